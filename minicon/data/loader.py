"""Mini-batches for training: per-epoch shuffling from a seed, and background prefetching.

Each pass over a :class:`DataLoader` is one epoch. The order and every random
augmentation parameter of epoch ``e`` come from generators seeded by
``(seed, e)``, so an epoch is the same whether it runs first or after a
restart, with or without prefetching. With ``prefetch=True`` a background
thread prepares the next batch (indexing and augmentation) while the caller
computes on the current one; NumPy and CuPy release the GIL inside their
kernels, so the two overlap.
"""

from __future__ import annotations

import queue
import threading

import numpy

from ..backend import host_rng

_POLL_SECONDS = 0.05


class DataLoader:
    """Iterate over ``(transform(images[batch]), labels[batch])`` in mini-batches.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, ...)
        Typically uint8 (N, 3, 32, 32) from :func:`minicon.data.load_cifar10`.
    labels : numpy.ndarray, shape (N,)
    batch_size : int
        B, the images per batch.
    shuffle : bool
        A new random order every epoch; otherwise the stored order.
    seed : int, optional
        Seeds the order and the augmentations of every epoch. Default: drawn
        from :func:`minicon.backend.host_rng` (so ``minicon.manual_seed``
        fixes it).
    drop_last : bool
        Skip the last batch when it has fewer than ``batch_size`` images
        (contrastive losses compare within a batch, so a tiny last batch
        would give a different task).
    transform : callable, optional
        Called as ``transform(images_batch, generator=rng)`` with this
        epoch's augmentation generator; every ``minicon.augment`` transform
        has that signature. Its result (for ``TwoViews``, a pair of arrays)
        is yielded in place of the image batch. Default: the images as they are.
    prefetch : bool
        Prepare the next batch in a background thread.

    Yields
    ------
    (x, labels) : tuple
        ``x`` is ``transform(images[idx])`` or ``images[idx]``; ``labels``
        is ``labels[idx]``, a host int64 array of shape (B,).

    Raises
    ------
    ValueError
        If ``images`` and ``labels`` differ in length, ``batch_size < 1``, or
        ``drop_last`` leaves no batch. An exception raised while preparing a
        batch in the background is re-raised by the iteration that needs it.

    Examples
    --------
    >>> loader = DataLoader(images, labels, 512, seed=0, transform=TwoViews(simclr_cifar()))
    >>> for epoch in range(num_epochs):
    ...     for (view1, view2), _ in loader:
    ...         ...
    """

    def __init__(self, images, labels, batch_size: int, *, shuffle: bool = True, seed=None,
                 drop_last: bool = True, transform=None, prefetch: bool = True):
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} and {len(labels)}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and len(images) < batch_size:
            raise ValueError(f"batch_size {batch_size} > {len(images)} images with drop_last=True: "
                             "no batch would be produced")
        self.images, self.labels = images, numpy.asarray(labels)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.transform, self.prefetch = transform, prefetch
        self.seed = int(host_rng().integers(2**63)) if seed is None else int(seed)
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration epoch ``epoch`` from batch ``start_batch`` on.

        Batch b of epoch e is the same whether the epoch runs whole or starts
        at b, so a run resumed mid-epoch sees exactly the batches it would have.
        """
        if not 0 <= int(start_batch) < len(self):
            raise ValueError(f"start_batch must be in [0, {len(self)}), got {start_batch}")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __iter__(self):
        epoch, start = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        batches = self._batches(epoch, start)
        return _prefetched(batches) if self.prefetch else batches

    def _batches(self, epoch: int, start: int = 0):
        # the order depends on (seed, epoch); each batch's augmentations on
        # (seed, epoch, batch), so any batch can be made without the ones before it
        n = len(self.images)
        order_rng = numpy.random.default_rng(numpy.random.SeedSequence([self.seed, epoch]))
        order = order_rng.permutation(n) if self.shuffle else numpy.arange(n)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx]
            if self.transform is not None:
                augment_rng = numpy.random.default_rng(numpy.random.SeedSequence([self.seed, epoch, b]))
                x = self.transform(x, generator=augment_rng)
            yield x, self.labels[idx]


def _prefetched(batches):
    """Yield from ``batches``, computing each next item in a background thread.

    The thread stops (and is joined) when the consumer finishes, breaks out,
    or raises: closing this generator sets ``stop``, the thread's pending
    ``put`` gives up within ``_POLL_SECONDS``, and at most the batch being
    prepared is finished first.
    """
    ready = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in batches:
                if not put(("batch", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))

    worker = threading.Thread(target=produce, name="minicon-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
