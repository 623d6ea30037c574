"""LARS: SGD with momentum and a per-layer trust ratio, as SimCLR trains with it."""

from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer


class LARS(Optimizer):
    r"""Layer-wise Adaptive Rate Scaling, in SimCLR's form.

    Each parameter tensor (one layer's weight) gets its own learning rate,
    scaled by the *trust ratio* of its weight norm to its gradient norm, so no
    layer moves by more than a fraction :math:`\eta_{tc}` of its own size per
    unit of learning rate:

    .. math::

        g_t &\leftarrow g_t + \lambda w_{t-1} \\
        r_t &= \eta_{tc}\, \frac{\lVert w_{t-1} \rVert}{\lVert g_t \rVert}
               \quad (r_t = 1 \text{ if either norm is } 0) \\
        b_t &= \mu\, b_{t-1} + \eta\, r_t\, g_t \quad (b_0 = 0) \\
        w_t &= w_{t-1} - b_t

    (You et al. 2017, Algorithm 1, with the gradient norm taken after weight
    decay and the learning rate inside the momentum buffer, as in SimCLR's
    ``LARSOptimizer``.) Parameters with fewer than 2 dimensions (biases,
    batch-norm scales and shifts) get neither weight decay nor the trust
    ratio (:math:`r_t = 1`) unless ``exclude_bias_and_norm=False``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (see :class:`Optimizer`).
    lr : float
        Learning rate :math:`\eta` >= 0; SimCLR uses ``sqrt_scaling(0.075, B)``.
    momentum : float
        :math:`\mu` in [0, 1).
    weight_decay : float
        :math:`\lambda` >= 0 (SimCLR: 1e-6).
    trust_coefficient : float
        :math:`\eta_{tc}` > 0 (SimCLR's ``eeta``: 1e-3).
    exclude_bias_and_norm : bool
        Exclude parameters with fewer than 2 dimensions from weight decay and
        the trust ratio (default True, as SimCLR excludes its biases and
        batch-norm parameters).

    Raises
    ------
    ValueError
        For ``lr < 0``, ``momentum`` outside [0, 1), ``weight_decay < 0`` or
        ``trust_coefficient <= 0``, naming the argument.

    Notes
    -----
    State per parameter: ``"step"`` and ``"momentum_buffer"`` :math:`b_t`.
    Because :math:`\eta` sits inside the buffer, a change of learning rate
    acts on new gradients only (SimCLR's convention; the BYOL/Barlow Twins
    LARS applies :math:`\eta` outside the buffer instead).

    References
    ----------
    Y. You, I. Gitman, B. Ginsburg, "Large Batch Training of Convolutional
    Networks", arXiv:1708.03888, 2017.
    T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), ICML 2020, §2.3 ("Default setting"), and its
    ``lars_optimizer.py`` (google-research/simclr).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 1e-3, exclude_bias_and_norm: bool = True):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "trust_coefficient": trust_coefficient,
                    "exclude_bias_and_norm": exclude_bias_and_norm}
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if not 0.0 <= group["momentum"] < 1.0:
            raise ValueError(f"LARS: momentum must be in [0, 1), got {group['momentum']}")
        if group["trust_coefficient"] <= 0:
            raise ValueError(
                f"LARS: trust_coefficient must be > 0, got {group['trust_coefficient']}"
            )

    @staticmethod
    def trust_ratio(w, g, trust_coefficient: float):
        """:math:`\\eta_{tc} \\lVert w \\rVert / \\lVert g \\rVert`, or 1 if either norm is 0.

        Returns a 0-d array on ``w``'s device (no host round trip per layer).
        """
        xp = array_module(w, g)
        w_norm = xp.linalg.norm(w.ravel())
        g_norm = xp.linalg.norm(g.ravel())
        usable = (w_norm > 0) & (g_norm > 0)
        # the inner where keeps 0/0 out of the arithmetic (and its warning)
        return xp.where(usable, trust_coefficient * w_norm / xp.where(usable, g_norm, 1), 1)

    def _update(self, p, state, group) -> None:
        g = p.grad
        weight_decay = self._weight_decay(p, group)
        if weight_decay:
            g = g + weight_decay * p.data
        ratio = 1.0
        if not (group["exclude_bias_and_norm"] and p.ndim < 2):
            ratio = self.trust_ratio(p.data, g, group["trust_coefficient"])
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = array_module(p.data).zeros_like(p.data)
        buf = state["momentum_buffer"]
        buf *= group["momentum"]
        buf += (group["lr"] * ratio) * g
        p.data -= buf
