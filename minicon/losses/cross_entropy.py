"""Softmax cross-entropy with integer targets, fused with the log-softmax,
and the stable softmax kernel every contrastive loss here shares."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import array_module, is_cupy_array, out_of_range, to_host
from ._checks import check_embeddings


def softmax_logsumexp_(logits, axis: int = -1):
    """``(P, m, r)``: softmax along ``axis``, the maximum ``m`` and ``r = log Σ exp(x - m)``, OVERWRITING ``logits`` with P.

    The maximum is subtracted first: exp(x - m) ≤ 1 cannot overflow and the
    sum is ≥ 1, so log never sees 0 (at τ = 0.01 raw logits reach ±100 and
    exp(100) is inf in float32). log-sum-exp is ``m + r``, but callers never
    form it: a loss ``lse - x_t`` is computed as ``r - (x_t - m)``, both terms
    at the scale of the loss, not of the logits (at logits of 1e8 in float32,
    ``m + r`` rounds to m and the loss to 0; the shifted form gives log C).
    Entries set to -inf (masked out) get probability exactly 0. In place
    because every caller owns its logits matrix: that saves two N×N
    temporaries. ``m`` and ``r`` keep ``axis`` as length 1.
    """
    xp = array_module(logits)
    m = logits.max(axis=axis, keepdims=True)
    logits -= m
    xp.exp(logits, out=logits)
    total = logits.sum(axis=axis, keepdims=True)
    logits /= total
    return logits, m, xp.log(total)


class CrossEntropy(Function):
    """``L = (1/N) Σ_i ℓ_i``, ``ℓ_i = -log softmax(x_i)[t_i] = logsumexp(x_i) - x_{i,t_i}``.

    Gradient: ∂ logsumexp(x_i)/∂x_ij = softmax(x_i)_j = P_ij and
    ∂x_{i,t_i}/∂x_ij = δ_{j,t_i}, so ∂ℓ_i/∂x_ij = P_ij - δ_{j,t_i} and
    ``grad_logits = (P - onehot(t)) · g / N``. Fusing log-softmax with the pick
    avoids the N×C log-softmax array and its separate backward, and the
    gradient is bounded in [-1, 1]/N whatever the logits. Targets get none.

    Shapes: logits (N, C) floating; targets (N,) integers in [0, C); L a
    scalar of the logits' dtype. Saves: P (N×C, the softmax, for the
    gradient) and the targets (where to subtract 1).

    Raises
    ------
    ValueError
        If logits are not (N, C) floating with N ≥ 1, or targets are not
        integers of shape (N,) within [0, C); names the argument.

    References
    ----------
    Bridle, "Probabilistic interpretation of feedforward classification
    network outputs" (1990); Goodfellow, Bengio & Courville, *Deep Learning*
    (2016), §6.2.2.3, eq. 6.30.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        xp = ctx.xp
        check_embeddings("cross_entropy", "logits", logits, letters="(N, C)")
        if not is_cupy_array(targets):
            targets = to_host(targets)  # checked on the host, then uploaded once
        n, classes = logits.shape
        if targets.dtype.kind not in "iu" or targets.shape != (n,):
            raise ValueError(
                f"cross_entropy: targets must be integer class indices of shape ({n},) to match "
                f"logits {tuple(logits.shape)}, got dtype {targets.dtype} and shape {tuple(targets.shape)}"
            )
        bad = out_of_range(targets, 0, classes)
        if bad:
            raise ValueError(
                f"cross_entropy: targets must lie in [0, {classes}) for {classes} classes, got "
                f"values from {bad[0]} to {bad[1]}"
            )
        targets = xp.asarray(targets)
        rows = xp.arange(n)
        picked = logits[rows, targets]
        probs, m, r = softmax_logsumexp_(logits.copy())
        ctx.save_for_backward(probs, targets)
        return xp.asarray((r[:, 0] - (picked - m[:, 0])).mean())  # shifted: exact at any magnitude

    @staticmethod
    def backward(ctx, g):
        probs, targets = ctx.saved
        grad = probs.copy()
        grad[ctx.xp.arange(len(targets)), targets] -= 1
        grad *= g / len(targets)
        return grad, None


def cross_entropy(logits, targets) -> Tensor:
    """Mean softmax cross-entropy of ``logits`` against integer class ``targets``.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Unnormalized class scores (any finite values; computed stably).
    targets : Tensor or array, shape (N,), integer
        The correct class of each row, in [0, C).

    Returns
    -------
    Tensor, shape ()
        ``(1/N) Σ_i -log softmax(logits_i)[targets_i]``, in nats.

    Raises
    ------
    ValueError
        For wrong shapes, non-integer or out-of-range targets (names the argument).

    See :class:`CrossEntropy` for the gradient and the source.
    """
    return CrossEntropy.apply(logits, targets)
