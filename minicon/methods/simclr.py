"""SimCLR: two augmented views of each image, pulled together against every other image in the batch."""

from __future__ import annotations

from ..autograd import Tensor
from ..distributed import all_gather
from ..losses import nt_xent
from ..nn import Module
from ..ops import concatenate
from .base import Method, two_views


class SimCLR(Method):
    """SimCLR: ``L = NT-Xent(g(f(x̃₁)), g(f(x̃₂)); τ)`` over the N pairs of a batch.

    ``f`` is the encoder (its features ``h = f(x)`` are the representation),
    ``g`` the projection head; the loss (``minicon.losses.nt_xent``) makes
    each projection pick the other view of its own image among the 2N - 1
    others in the batch.

    Both views go through the encoder and the head as ONE batch of 2N images
    (views 1 then views 2), so every batch-norm layer computes its statistics
    over both views together. SimCLR's reference implementation concatenates
    the views along the batch axis before the network too; its "Global BN"
    (§2.2) is the same concern across devices (mean and variance aggregated
    over every device's shard). It is also the faster choice: one pass with
    GEMMs twice as tall instead of two.
    Encoding the views separately would normalise each view with its own
    statistics, a per-view shift the network can use to tell the views apart.

    On P ranks (``comm`` set by :func:`minicon.distributed.data_parallel`)
    each rank encodes its N/P pairs with synchronized batch norm and gathers
    the projections of all ranks, so every rank computes the same loss over
    the global 2N views (every other image of the GLOBAL batch a negative,
    SimCLR §2.2). The (2N)² logits are recomputed on each rank: at CIFAR
    batch sizes that is a small part of the step, and it keeps NT-Xent one
    fused op.

    Parameters
    ----------
    encoder : Module
        Images ``N×C×H×W`` → features ``N×D`` (e.g. ``ConvNet()``, ``resnet18()``).
    projection_head : Module
        Features ``N×D`` → projections ``N×P`` (e.g. ``ProjectionHead(D, D, 128)``).
    temperature : float
        τ > 0 of NT-Xent (SimCLR uses 0.5 on CIFAR-10).

    Batch for :meth:`training_step`: ``((view1, view2), labels)`` with the
    views floating ``N×C×H×W`` arrays or Tensors (N ≥ 2); labels are ignored.

    Raises
    ------
    ValueError
        For ``temperature`` ≤ 0; in ``training_step`` for a malformed batch.

    References
    ----------
    Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020, Algorithm 1, eq. (1), §2.2.
    """

    def __init__(self, encoder: Module, projection_head: Module, temperature: float = 0.5):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"SimCLR: temperature must be > 0, got {temperature!r}")
        self.encoder = encoder
        self.projection_head = projection_head
        self.temperature = float(temperature)

    def training_step(self, batch) -> Tensor:
        """NT-Xent of one batch ``((view1, view2), labels)``; a scalar Tensor in nats."""
        view1, view2 = two_views(batch, "SimCLR.training_step")
        n = view1.shape[0]
        z = self.projection_head(self.encoder(concatenate([view1, view2])))
        return nt_xent(all_gather(z[:n], self.comm), all_gather(z[n:], self.comm), self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
