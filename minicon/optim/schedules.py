"""Learning-rate schedules and batch-size scaling rules.

``warmup_cosine`` gives the learning rate of one optimizer step;
``WarmupCosine`` sets it on an optimizer's groups step after step, in the
PyTorch order (``optimizer.step()`` then ``schedule.step()``), and saves its
position for a resumed run. ``linear_scaling`` and ``sqrt_scaling`` turn a
base learning rate into one for a batch size.
"""

from __future__ import annotations

import math
import operator

from .optimizer import Optimizer


def _whole(value, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or ValueError naming ``name``."""
    try:
        whole = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if whole < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {whole}")
    return whole


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float = 0.0) -> float:
    r"""The learning rate at optimizer step ``step``: linear warmup, then cosine decay.

    With :math:`W` warmup steps out of :math:`T`, base rate :math:`\eta` and
    final rate :math:`\eta_{min}`:

    .. math::

        \eta_s = \begin{cases}
            \eta\, \dfrac{s + 1}{W} & s < W \\[1ex]
            \eta_{min} + (\eta - \eta_{min})\, \tfrac12
                \bigl(1 + \cos(\pi\, \tfrac{s - W + 1}{T - W})\bigr) & s \ge W
        \end{cases}

    So step 0 already updates (:math:`\eta/W`, not 0; unless :math:`T = 1`
    and it is also the last step), step :math:`W - 1` is the peak
    :math:`\eta`, and the last step :math:`T - 1` gets exactly
    :math:`\eta_{min}`. This is SimCLR's schedule (Chen et al. 2020, §2.3
    "Default setting": linear warmup, then cosine decay without restarts, Loshchilov &
    Hutter 2017 eq. 5) read one step later: SimCLR's first step has rate 0
    and its rate reaches :math:`\eta_{min}` one step after the last. With
    ``W = 0`` there is no warmup and step 0 is already one cosine step below
    the peak.

    Parameters
    ----------
    step : int
        Optimizer step, 0-based, in ``[0, total_steps)``. Steps, not epochs.
    total_steps : int
        Number of optimizer steps in the run (>= 1).
    warmup_steps : int
        Warmup length, in ``[0, total_steps)``: at least one step decays.
    base_lr : float
        Peak learning rate (> 0).
    final_lr : float
        Rate at the last step, in ``[0, base_lr]``.

    Returns
    -------
    float
        The learning rate.

    Raises
    ------
    ValueError
        If an argument is out of range or not an integer where one is
        needed; the message names it.

    References
    ----------
    T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, §2.3 ("Default setting").
    I. Loshchilov, F. Hutter, "SGDR: Stochastic Gradient Descent with Warm
    Restarts", ICLR 2017, eq. 5.
    P. Goyal et al., "Accurate, Large Minibatch SGD", 2017, sec. 2.2 (warmup).
    """
    total_steps = _whole(total_steps, "total_steps", 1)
    warmup_steps = _whole(warmup_steps, "warmup_steps", 0)
    step = _whole(step, "step", 0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warmup_steps must be < total_steps so at least one step decays, got "
            f"warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if step >= total_steps:
        raise ValueError(f"step must be < total_steps={total_steps}, got {step}")
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    if not 0 <= final_lr <= base_lr:
        raise ValueError(f"final_lr must be in [0, base_lr={base_lr}], got {final_lr}")
    if step < warmup_steps:
        # the ratio first, so the peak step gets base_lr * 1.0 exactly
        return base_lr * ((step + 1) / warmup_steps)
    progress = (step - warmup_steps + 1) / (total_steps - warmup_steps)
    return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_scaling(base_lr: float, batch_size: int, reference: int = 256) -> float:
    r"""The linear scaling rule: :math:`\eta = \eta_{base} \cdot B / B_{ref}`.

    When the batch is :math:`k` times larger, take a :math:`k` times larger
    step (Goyal et al. 2017, sec. 2.1); SimCLR's LARS runs use
    :math:`0.3 \cdot B/256` (Chen et al. 2020, appendix B.1).

    Parameters
    ----------
    base_lr : float
        Learning rate at the reference batch size (> 0).
    batch_size : int
        Batch size :math:`B` (>= 1).
    reference : int
        Reference batch size :math:`B_{ref}` (>= 1; default 256).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For ``base_lr <= 0`` or a batch size that is not a positive integer,
        naming the argument.

    References
    ----------
    P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
    arXiv:1706.02677, 2017.
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    batch_size = _whole(batch_size, "batch_size", 1)
    reference = _whole(reference, "reference", 1)
    return base_lr * batch_size / reference


def sqrt_scaling(base_lr: float, batch_size: int, reference: int = 1) -> float:
    r"""The square-root scaling rule: :math:`\eta = \eta_{base} \sqrt{B / B_{ref}}`.

    SimCLR's LARS runs use :math:`0.075 \sqrt{B}` (``reference=1``), which
    it found better than the linear rule for small batches (Chen et al. 2020,
    appendix B.1).

    Parameters
    ----------
    base_lr : float
        Learning rate at the reference batch size (> 0).
    batch_size : int
        Batch size :math:`B` (>= 1).
    reference : int
        Reference batch size :math:`B_{ref}` (>= 1; default 1, SimCLR's form).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For ``base_lr <= 0`` or a batch size that is not a positive integer,
        naming the argument.

    References
    ----------
    T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, appendix B.1.
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    batch_size = _whole(batch_size, "batch_size", 1)
    reference = _whole(reference, "reference", 1)
    return base_lr * math.sqrt(batch_size / reference)


class WarmupCosine:
    """Sets an optimizer's learning rates by :func:`warmup_cosine`, one step at a time.

    Construction sets the rate of step 0; call :meth:`step` after each
    ``optimizer.step()`` (PyTorch's order). Each group follows the schedule
    from its own starting ``lr``.

    Parameters
    ----------
    optimizer : Optimizer
        Its groups' current ``lr`` are taken as the peak rates.
    total_steps, warmup_steps, final_lr
        As for :func:`warmup_cosine`.

    Attributes
    ----------
    position : int
        The step whose rate is set now, 0 to ``total_steps``; ``total_steps``
        means the schedule is finished (the rate stays at ``final_lr``).
    base_lrs : list of float
        The peak rate of each group.

    Raises
    ------
    ValueError
        For arguments :func:`warmup_cosine` rejects, and from :meth:`step`
        when stepped past the end.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int,
                 final_lr: float = 0.0):
        self.optimizer = optimizer
        self.total_steps, self.warmup_steps, self.final_lr = total_steps, warmup_steps, final_lr
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.position = 0
        self._apply()

    def lrs(self) -> list:
        """The learning rate of each group at the current position."""
        step = min(self.position, self.total_steps - 1)
        return [warmup_cosine(step, self.total_steps, self.warmup_steps, base, self.final_lr)
                for base in self.base_lrs]

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lrs()):
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimizer step and set the groups' rates for the next one.

        Raises
        ------
        ValueError
            If the schedule already covered all ``total_steps`` steps.
        """
        if self.position >= self.total_steps:
            raise ValueError(
                f"WarmupCosine stepped past total_steps={self.total_steps}: the run takes "
                "more optimizer steps than the schedule was built for"
            )
        self.position += 1
        self._apply()

    def state_dict(self) -> dict:
        """``{"position": int, "base_lrs": [float, ...]}``: all a resumed run needs."""
        return {"position": self.position, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the position and peak rates, and set the groups' rates for it.

        Raises
        ------
        ValueError
            If the number of peak rates is not the optimizer's number of
            groups, or the position is outside ``[0, total_steps]``.
        """
        base_lrs = list(state_dict["base_lrs"])
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"WarmupCosine.load_state_dict: {len(base_lrs)} base_lrs saved, the "
                f"optimizer has {len(self.optimizer.param_groups)} parameter groups"
            )
        position = _whole(state_dict["position"], "position", 0)
        if position > self.total_steps:
            raise ValueError(
                f"WarmupCosine.load_state_dict: position {position} is past "
                f"total_steps={self.total_steps}"
            )
        self.base_lrs, self.position = base_lrs, position
        self._apply()
