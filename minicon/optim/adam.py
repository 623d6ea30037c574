"""Adam (L2 weight decay in the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    r"""Adam, step for step as ``torch.optim.Adam``.

    With gradient :math:`g_t`, step :math:`t = 1, 2, \dots`, moments
    :math:`m_0 = v_0 = 0`:

    .. math::

        g_t &\leftarrow g_t + \lambda w_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        w_t &= w_{t-1} - \frac{\eta}{1 - \beta_1^t}\,
               \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    (Kingma & Ba 2015, Algorithm 1, with :math:`\epsilon` added after the
    bias correction of :math:`\sqrt{v_t}`, as PyTorch does.) The first line is
    L2 regularisation, which Adam rescales per coordinate; for weight decay
    that is not rescaled use :class:`AdamW`.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (see :class:`Optimizer`).
    lr : float
        Learning rate :math:`\eta` >= 0 (default 1e-3).
    betas : (float, float)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float
        :math:`\epsilon` >= 0, keeps the step finite where :math:`v_t = 0`.
    weight_decay : float
        :math:`\lambda` >= 0.
    exclude_bias_and_norm : bool
        Give parameters with fewer than 2 dimensions no weight decay (default
        True). Set False for PyTorch's behaviour.

    Raises
    ------
    ValueError
        For an out-of-range ``lr``, ``betas``, ``eps`` or ``weight_decay``,
        naming the argument.

    Notes
    -----
    State per parameter: ``"step"`` (t), ``"exp_avg"`` (:math:`m_t`) and
    ``"exp_avg_sq"`` (:math:`v_t`), the last two of the parameter's shape and dtype.

    References
    ----------
    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    PyTorch ``torch.optim.Adam``.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, exclude_bias_and_norm: bool = True):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "exclude_bias_and_norm": exclude_bias_and_norm}
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name = type(self).__name__
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
        if group["eps"] < 0:
            raise ValueError(f"{name}: eps must be >= 0, got {group['eps']}")

    def _update(self, p, state, group) -> None:
        xp = array_module(p.data)
        lr, (beta1, beta2), t = group["lr"], group["betas"], state["step"]
        g = p.grad
        weight_decay = self._weight_decay(p, group)
        if weight_decay:
            if self.decoupled:
                p.data *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p.data
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = lr / (1 - beta1**t)
        denom = xp.sqrt(v) / (1 - beta2**t) ** 0.5 + group["eps"]
        p.data -= step_size * m / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay, step for step as ``torch.optim.AdamW``.

    The same as :class:`Adam` except that the weight decay shrinks the
    weights directly instead of entering the gradient:

    .. math::

        w_{t-1} \leftarrow (1 - \eta\lambda)\, w_{t-1}

    before the Adam step on the raw gradient (Loshchilov & Hutter 2019,
    Algorithm 2, line 12, with the schedule multiplier folded into
    :math:`\eta`, as PyTorch does). The decay is then the same for every
    coordinate, however large its gradient history.

    Parameters
    ----------
    params, lr, betas, eps, exclude_bias_and_norm
        As for :class:`Adam`.
    weight_decay : float
        :math:`\lambda` >= 0; default 1e-2 as in PyTorch.

    References
    ----------
    I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    PyTorch ``torch.optim.AdamW``.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, exclude_bias_and_norm: bool = True):
        super().__init__(params, lr, betas, eps, weight_decay, exclude_bias_and_norm)
