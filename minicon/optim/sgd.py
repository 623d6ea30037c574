"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer


class SGD(Optimizer):
    r"""SGD with (Nesterov) momentum and weight decay, step for step as ``torch.optim.SGD``.

    With gradient :math:`g_t`, weight decay :math:`\lambda`, momentum
    :math:`\mu` and learning rate :math:`\eta`, one step is

    .. math::

        g_t &\leftarrow g_t + \lambda w_{t-1} \\
        b_t &= \mu b_{t-1} + g_t \quad (b_1 = g_1) \\
        w_t &= w_{t-1} - \eta\, b_t
            \quad\text{or, with Nesterov,}\quad
            w_t = w_{t-1} - \eta\,(g_t + \mu b_t)

    (Sutskever et al. 2013, eqs. 1-2 and 3-4, in PyTorch's form with the
    learning rate outside the buffer.) With ``momentum=0`` this is plain SGD.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (see :class:`Optimizer`).
    lr : float
        Learning rate :math:`\eta` (>= 0).
    momentum : float
        :math:`\mu` in [0, 1). Default 0.9 (PyTorch's default is 0).
    weight_decay : float
        L2 coefficient :math:`\lambda` >= 0, added to the gradient.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0``.
    exclude_bias_and_norm : bool
        Give parameters with fewer than 2 dimensions no weight decay (default True).
        Set False for PyTorch's behaviour (decay everything).

    Raises
    ------
    ValueError
        For ``lr < 0``, ``momentum`` outside [0, 1), ``weight_decay < 0`` or
        ``nesterov`` without momentum, naming the argument.

    Notes
    -----
    State per parameter: ``"step"`` and ``"momentum_buffer"`` :math:`b_t`
    (same shape and dtype as the parameter; absent when ``momentum == 0``).

    References
    ----------
    I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of
    initialization and momentum in deep learning", ICML 2013.
    PyTorch ``torch.optim.SGD`` (dampening 0).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, exclude_bias_and_norm: bool = True):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "nesterov": nesterov, "exclude_bias_and_norm": exclude_bias_and_norm}
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if not 0.0 <= group["momentum"] < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {group['momentum']}")
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def _update(self, p, state, group) -> None:
        g = p.grad
        weight_decay = self._weight_decay(p, group)
        if weight_decay:
            g = g + weight_decay * p.data
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                # xp.array copies, and keeps 0-d results arrays (NumPy returns scalars)
                state["momentum_buffer"] = array_module(g).array(g)
            else:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += g
            buf = state["momentum_buffer"]
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g
