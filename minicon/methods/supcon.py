"""Supervised contrastive learning: NT-Xent's batch, with every same-class view as a positive."""

from __future__ import annotations

from .. import backend
from ..autograd import Tensor
from ..distributed import all_gather
from ..losses import supcon
from ..nn import Module
from ..ops import concatenate
from .base import Method, two_views


class SupConMethod(Method):
    """SupCon: ``L = SupCon(g(f([x̃₁; x̃₂])), [y; y]; τ)`` (Khosla et al. 2020, L_out, eq. 2).

    SimCLR's step with the labels used: both views of the batch go through
    the encoder and head as one batch of 2N, and for each anchor every other
    view of the SAME CLASS is a positive (its own other view included), every
    view of another class a negative. With one image per class in the batch
    it is NT-Xent. It is the bridge from contrastive learning to metric
    learning: a triplet loss (Schroff et al. 2015, eq. 2) pulls one positive closer
    than one negative by a margin; SupCon weighs all positives and all
    negatives of the batch at once through a softmax.

    Parameters
    ----------
    encoder, projection_head : Module
        As :class:`SimCLR`.
    temperature : float
        τ > 0 (the paper: 0.1).

    Batch for :meth:`training_step`: ``((view1, view2), labels)`` with labels
    integer (N,), host or device.

    References
    ----------
    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, eq. (2)
    (the loss is :func:`minicon.losses.supcon`).
    """

    def __init__(self, encoder: Module, projection_head: Module, temperature: float = 0.1):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"SupCon: temperature must be > 0, got {temperature!r}")
        self.encoder, self.projection_head = encoder, projection_head
        self.temperature = float(temperature)

    def training_step(self, batch) -> Tensor:
        """SupCon of one batch ``((view1, view2), labels)``; a scalar in nats."""
        view1, view2 = two_views(batch, "SupCon.training_step")
        labels = batch[1]
        labels = labels.data if isinstance(labels, Tensor) else labels
        if getattr(labels, "shape", None) != (view1.shape[0],):
            raise ValueError(f"SupCon.training_step: labels must have shape ({view1.shape[0]},), one per "
                             f"image, got {getattr(labels, 'shape', type(labels).__name__)}")
        n = view1.shape[0]
        labels = backend.asarray(labels)
        z = self.projection_head(self.encoder(concatenate([view1, view2])))
        if self.comm is not None and self.comm.size > 1:  # the global batch's positives and negatives
            z = concatenate([all_gather(z[:n], self.comm), all_gather(z[n:], self.comm)])
            labels = self.comm.allgather(labels)
        return supcon(z, backend.array_module(labels).concatenate([labels, labels]), self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
