"""What every method shares with the trainer: ``training_step``, ``encode`` and input checks.

A method is a :class:`~minicon.nn.Module` that owns its networks (so
``parameters()``, ``state_dict()``, ``train()``/``eval()`` and ``to()`` cover
all of it) and turns one batch into one scalar loss. The trainer only ever
calls::

    loss = method.training_step(batch)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

and reads ``method.num_views`` to know whether the loader should deliver two
augmented views per image (SimCLR, MoCo) or one (CLIP).
"""

from __future__ import annotations

from ..autograd import Tensor
from ..nn import Module


def as_images(images, op: str, name: str = "images") -> Tensor:
    """``images`` as a Tensor of the current backend, checked to be floating ``N×C×H×W``.

    Parameters
    ----------
    images : Tensor or array (NumPy or CuPy), shape (N, C, H, W), floating
        Host arrays are copied to the current backend.
    op, name : str
        Named in the error message.

    Raises
    ------
    ValueError
        If ``images`` is not 4-D or not floating (uint8 images must be
        converted and normalized first, as the augmentation pipeline does).
    """
    if not isinstance(images, Tensor):
        images = Tensor(images)
    if images.ndim != 4 or images.dtype.kind != "f":
        raise ValueError(
            f"{op}: {name} must be floating N×C×H×W (e.g. float32 NCHW after augmentation), "
            f"got shape {tuple(images.shape)} and dtype {images.dtype}"
        )
    return images


def two_views(batch, op: str) -> tuple:
    """The two augmented views of a ``((view1, view2), labels)`` batch, as checked Tensors.

    Raises
    ------
    ValueError
        If ``batch`` does not have that structure, or the views' shapes differ
        or are not floating ``N×C×H×W`` (names both shapes).
    """
    try:
        (view1, view2), _ = batch
    except (TypeError, ValueError):
        raise ValueError(f"{op}: batch must be ((view1, view2), labels)") from None
    view1, view2 = as_images(view1, op, "view1"), as_images(view2, op, "view2")
    if view1.shape != view2.shape:
        raise ValueError(
            f"{op}: the two views must have the same shape, got {tuple(view1.shape)} and "
            f"{tuple(view2.shape)}"
        )
    return view1, view2


class Method(Module):
    """Base class of the contrastive methods.

    Subclasses register their networks as sub-modules and define
    :meth:`training_step`; :meth:`encode` reads ``self.encoder``.

    Attributes
    ----------
    num_views : int
        Augmented views per image a batch carries: 2 (batch
        ``((view1, view2), labels)``) or 1 (batch ``(images, labels)``).
    comm : communicator or None
        With P ranks (:func:`minicon.distributed.data_parallel`), each
        ``training_step`` gets this rank's 1/P of the global batch and
        gathers what its loss compares across ranks; None: one process.
    """

    num_views = 2
    comm = None  # set by minicon.distributed.data_parallel: gather across ranks in training_step
    shuffles_bn = False  # True: keeps per-rank batch norm and shuffles across ranks instead of syncing

    def training_step(self, batch) -> Tensor:
        """The scalar loss of one batch, with the graph recorded for ``backward()``."""
        raise NotImplementedError(f"{type(self).__name__} does not define training_step()")

    def step_metrics(self) -> dict:
        """Method-specific numbers the trainer logs after each step (float values); none by default."""
        return {}

    def encode(self, images) -> Tensor:
        """Encoder features ``h`` of ``images`` (N×C×H×W) → N×D, the representation kNN and probes read.

        Runs in whatever mode the module is in, recording a graph unless
        called under ``no_grad``; :func:`minicon.evaluate.extract_features`
        wraps it in eval mode and ``no_grad`` over batches.
        """
        return self.encoder(as_images(images, f"{type(self).__name__}.encode"))

    def embed(self, images) -> Tensor:
        """Projections ``z = g(f(x))`` of ``images`` (N×C×H×W) → N×P: the vectors the loss compares.

        Collapse diagnostics belong here rather than on ``h``: ``h`` leaves a
        ReLU and an average pool, so every coordinate is ≥ 0 and all features
        share one orthant whether or not training works. Same mode rules as
        :meth:`encode`.
        """
        return self.projection_head(self.encode(images))
