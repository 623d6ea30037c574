"""MoCo's queue of negative keys: a ring buffer of the K most recent normalized keys."""

from __future__ import annotations

from ..autograd import Tensor
from ..backend import array_module, default_dtype, get_xp, host_rng
from ..nn import Module
from .normalize import l2_normalize


class MemoryQueue(Module):
    """A fixed-size FIFO dictionary of keys with a write pointer (MoCo).

    It STARTS FULL of random unit vectors, as MoCo's reference code does
    (``normalize(randn(dim, K))``), so ``keys()`` is always K×D and no slot
    needs masking; the random keys are flushed out by real ones after K keys
    have been enqueued. They are drawn on the host from
    :func:`minicon.backend.host_rng`, so :func:`minicon.manual_seed` makes them
    reproducible, and live on the backend current at construction.

    It is a :class:`~minicon.nn.Module` with two buffers and no parameters,
    ``buffer`` (the K×D keys) and ``pointer`` (the write position, int64), so
    a model that holds it as a sub-module saves, loads and moves it with the
    rest of its state (MoCo's ``queue`` and ``queue_ptr`` buffers).

    Parameters
    ----------
    dim : int
        D, the key width. ≥ 1.
    size : int
        K, the number of keys kept (MoCo: 65536 on ImageNet; 4096 is common on
        CIFAR). ≥ 1.
    dtype : dtype, optional
        Default: minicon's default dtype (float32).

    Attributes
    ----------
    dim, size : int
    ptr : int
        Index of the slot the next key goes to, in [0, size) (the ``pointer`` buffer).

    Raises
    ------
    ValueError
        If ``dim`` or ``size`` is not a positive integer (names it).

    References
    ----------
    He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, §3.2 "Dictionary as a queue" and
    Algorithm 1.
    """

    def __init__(self, dim: int, size: int, dtype=None):
        for name, value in (("dim", dim), ("size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MemoryQueue: {name} must be a positive integer, got {value!r}")
        super().__init__()
        self.dim, self.size = dim, size
        xp = get_xp()
        draws = xp.asarray(host_rng().standard_normal((size, dim)), dtype=dtype or default_dtype())
        self.register_buffer("buffer", Tensor._wrap(l2_normalize(draws)[0]))
        self.register_counter("pointer")

    @property
    def ptr(self) -> int:
        return int(self.pointer.data)

    @ptr.setter
    def ptr(self, value: int) -> None:
        self.pointer.data[...] = value

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"

    def keys(self) -> Tensor:
        """The K×D keys (the negatives of the next step), as a tensor without gradient.

        This is the LIVE buffer, not a copy: :meth:`enqueue` overwrites it in
        place. Losses here copy what they keep for backward (``info_nce``
        saves its own normalized keys), so enqueueing between a loss's forward
        and its ``backward`` is safe; copy it yourself to keep a snapshot.
        """
        return Tensor._wrap(self.buffer.data)

    def enqueue(self, keys) -> None:
        """Write a batch of keys (normalized, without gradient) at the pointer, oldest out.

        A batch running past the end wraps around to slot 0; batches of any
        size B are handled, including a last partial batch. If B > K only the
        last K keys survive, exactly as if they had been written one by one.

        Parameters
        ----------
        keys : Tensor or array, shape (B, D)
            Usually this step's ``k``; its graph is not kept.

        Raises
        ------
        ValueError
            If ``keys`` is not (B, D) with the queue's D (names both shapes).
        TypeError
            If ``keys`` lives on the other backend.
        """
        data = keys.data if isinstance(keys, Tensor) else keys
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(
                f"MemoryQueue.enqueue: keys must be (B, {self.dim}) for a queue of dim "
                f"{self.dim}, got shape {tuple(data.shape)}"
            )
        xp = array_module(self.buffer.data, data, op="MemoryQueue.enqueue")
        count = data.shape[0]
        if count > self.size:  # the first count - size keys would be overwritten in this call
            self.ptr = (self.ptr + count - self.size) % self.size
            data, count = data[count - self.size :], self.size
        slots = (self.ptr + xp.arange(count)) % self.size
        self.buffer.data[slots] = l2_normalize(data)[0]
        self.ptr = (self.ptr + count) % self.size
