"""Non-contrastive siamese methods: SimSiam and BYOL, a predictor and a stop-gradient instead of negatives."""

from __future__ import annotations

from ..autograd import Tensor, no_grad
from ..distributed import all_gather
from ..losses import cosine_similarity
from ..nn import Module
from ..ops import concatenate
from .base import Method, two_views
from .momentum import momentum_copy, momentum_update_


class SimSiam(Method):
    """SimSiam: ``L = -½ cos(p₁, sg(z₂)) - ½ cos(p₂, sg(z₁))``, no negatives, no momentum encoder.

    Both views go through the encoder ``f`` and the projector ``g`` as one
    batch (``z = g(f(x̃))``), then the predictor ``q`` (``p = q(z)``). Each
    prediction is pulled toward the OTHER view's projection, and that
    projection is held constant (the stop-gradient ``sg``, here ``detach``):
    the loss's gradient reaches the networks only through ``p``.

    Why it does not collapse to a constant: with no negatives, the loss alone
    is minimized by mapping every image to one point. SimSiam's experiments
    (§4.1, Fig. 2) show the stop-gradient is what prevents it: remove it and
    the outputs collapse at once (embedding std → 0), as does removing the
    predictor (§4.2). Chen & He interpret the method as alternating
    optimization of an EM-like objective (§5), the stop-gradient fixing the
    target of one step. minicon's lesson 10 shows both failures on purpose.

    Parameters
    ----------
    encoder : Module
        Images ``N×C×H×W`` → features ``N×D``.
    projection_head : Module
        ``g``: features → projections ``N×P`` (SimSiam: an MLP with batch norm).
    predictor : Module
        ``q``: ``N×P`` → ``N×P`` (SimSiam: a bottleneck Linear-BN-ReLU-Linear,
        hidden width P/4).
    stop_gradient : bool
        False removes the stop-gradient: the ablation that collapses.

    Batch for :meth:`training_step`: ``((view1, view2), labels)``, labels ignored.
    Loss in [-1, 1]; -1 when every prediction points along its target.

    References
    ----------
    Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
    Algorithm 1 and eq. (1)-(4), §4.
    """

    def __init__(self, encoder: Module, projection_head: Module, predictor: Module,
                 stop_gradient: bool = True):
        super().__init__()
        self.encoder, self.projection_head, self.predictor = encoder, projection_head, predictor
        self.stop_gradient = bool(stop_gradient)

    def training_step(self, batch) -> Tensor:
        """The symmetrized negative cosine of one batch ``((view1, view2), labels)``; a scalar."""
        view1, view2 = two_views(batch, "SimSiam.training_step")
        n = view1.shape[0]
        z = self.projection_head(self.encoder(concatenate([view1, view2])))
        p = self.predictor(z)
        target = z.detach() if self.stop_gradient else z
        # on P ranks, the mean over the global batch (the same loss, and gradient, as one process)
        p1, p2, t1, t2 = (all_gather(a, self.comm) for a in (p[:n], p[n:], target[:n], target[n:]))
        return -(cosine_similarity(p1, t2).mean() + cosine_similarity(p2, t1).mean()) * 0.5

    def extra_repr(self) -> str:
        return f"stop_gradient={self.stop_gradient}"


class BYOL(Method):
    """BYOL: ``L = ‖q̂₁ - ẑ'₂‖² + ‖q̂₂ - ẑ'₁‖²`` with the target ``z'`` from a momentum copy.

    The online network (encoder ``f``, projector ``g``, predictor ``q``)
    predicts, from one view, the target network's projection of the other
    view; the target network (``f'``, ``g'``) is an exponential moving
    average of the online one, ``θ' ← m·θ' + (1 - m)·θ`` (eq. 1), and gets no
    gradient. With unit vectors ``‖q̂ - ẑ'‖² = 2 - 2·cos(q, z')`` (eq. 2); the
    loss sums both directions (``L^BYOL = L + L̃``, §3.1, just before eq. 3,
    the update), so it lies in [0, 8].

    Each step, as :class:`MoCo` orders it: the momentum update first (from the
    online weights left by the previous optimizer step), then both views
    through the online networks with gradient and through the target
    networks without. Averaging batch-norm running statistics into the
    target is minicon's choice (see :func:`momentum_update_`). BYOL raises m
    from 0.996 to 1 on a cosine schedule; here m is fixed (a common
    simplification on CIFAR).

    Parameters
    ----------
    encoder, projection_head, predictor : Module
        As :class:`SimSiam` (BYOL: projector and predictor Linear-BN-ReLU-Linear).
    momentum : float
        m in [0, 1).

    Batch for :meth:`training_step`: ``((view1, view2), labels)``, labels ignored.

    References
    ----------
    Grill et al., "Bootstrap Your Own Latent: A New Approach to
    Self-Supervised Learning", NeurIPS 2020, §3.1, eq. (1)-(2) and the
    symmetrized loss before eq. (3).
    """

    def __init__(self, encoder: Module, projection_head: Module, predictor: Module,
                 momentum: float = 0.99):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"BYOL: momentum must be in [0, 1), got {momentum!r}")
        self.encoder, self.projection_head, self.predictor = encoder, projection_head, predictor
        self.target_encoder = momentum_copy(encoder)
        self.target_projection_head = momentum_copy(projection_head)
        self.momentum = float(momentum)

    def training_step(self, batch) -> Tensor:
        """BYOL's symmetrized loss of one batch ``((view1, view2), labels)``; updates the target first."""
        view1, view2 = two_views(batch, "BYOL.training_step")
        n = view1.shape[0]
        with no_grad():
            momentum_update_(self.target_encoder, self.encoder, self.momentum)
            momentum_update_(self.target_projection_head, self.projection_head, self.momentum)
        views = concatenate([view1, view2])
        q = self.predictor(self.projection_head(self.encoder(views)))
        self.target_encoder.train(self.training)
        self.target_projection_head.train(self.training)
        with no_grad():
            target = self.target_projection_head(self.target_encoder(views))
        q1, q2, t1, t2 = (all_gather(a, self.comm) for a in (q[:n], q[n:], target[:n], target[n:]))
        return (2 - 2 * cosine_similarity(q1, t2).mean()) + (2 - 2 * cosine_similarity(q2, t1).mean())

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}"
