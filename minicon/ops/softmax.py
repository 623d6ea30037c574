"""Softmax and log-softmax along one axis, each with a fused backward."""

from __future__ import annotations

from ..autograd import Function


class Softmax(Function):
    """``s = softmax(x)_i = exp(x_i) / Σ_j exp(x_j)`` along ``axis``.

    Gradient: ∂s_i/∂x_j = s_i(δ_ij - s_j), so the vector–Jacobian product is
    ``grad_x = s * (g - Σ_j g_j s_j)`` (one reduction, no N×N Jacobian).
    The row maximum is subtracted first: softmax is shift-invariant and
    exp(x - max) ≤ 1 cannot overflow. Saves: s.

    References
    ----------
    Goodfellow, Bengio & Courville, *Deep Learning* (2016), §6.2.2.3.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        s = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(s)
        ctx.axis = axis
        return s

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved
        return s * (g - (g * s).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """``y = log_softmax(x)_i = x_i - log Σ_j exp(x_j)`` along ``axis``.

    Gradient: ∂y_i/∂x_j = δ_ij - softmax(x)_j, so
    ``grad_x = g - softmax(x) * Σ_i g_i`` with softmax(x) = exp(y).
    Computed as (x - m) - log Σ exp(x - m) with m the row maximum (the
    log-sum-exp trick), finite for any finite input. Saves: y.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g - ctx.xp.exp(y) * g.sum(axis=ctx.axis, keepdims=True)
