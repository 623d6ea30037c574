"""Elementwise ops: arithmetic with NumPy broadcasting and unary functions.

Each gradient below is the elementwise derivative times the upstream
gradient ``g``; for broadcast binary ops the result is then summed back to
each input's shape by :func:`minicon.autograd.unbroadcast`. Python scalars
pass through to the array library unchanged, so they never change a
tensor's dtype (NumPy's NEP 50: ``float32 + 2.0`` is float32).
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function, unbroadcast


def _shape(a) -> tuple:
    return getattr(a, "shape", ())


def _check_broadcast(op: str, a, b) -> None:
    backend.broadcast_shapes(op, _shape(a), _shape(b))


class Add(Function):
    """``out = a + b`` (broadcasting).

    Gradients: ∂out/∂a = ∂out/∂b = 1, so ``grad_a = unbroadcast(g)``, likewise
    for b. Shapes: a, b broadcastable; out has the broadcast shape.
    Saves: only the input shapes.
    """

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("add", a, b)
        ctx.shapes = (_shape(a), _shape(b))
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (
            unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
            unbroadcast(g, sb) if ctx.needs_input_grad[1] else None,
        )


class Sub(Function):
    """``out = a - b`` (broadcasting).

    Gradients: ∂out/∂a = 1, ∂out/∂b = -1. Saves: the input shapes.
    """

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("sub", a, b)
        ctx.shapes = (_shape(a), _shape(b))
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (
            unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
            unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None,
        )


class Mul(Function):
    """``out = a * b`` (broadcasting).

    Gradients: ∂out/∂a = b, ∂out/∂b = a (product rule), so
    ``grad_a = unbroadcast(g * b)`` and ``grad_b = unbroadcast(g * a)``.
    Saves: a and b.
    """

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("mul", a, b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return (
            unbroadcast(g * b, _shape(a)) if ctx.needs_input_grad[0] else None,
            unbroadcast(g * a, _shape(b)) if ctx.needs_input_grad[1] else None,
        )


class Div(Function):
    """``out = a / b`` (broadcasting).

    Gradients: ∂out/∂a = 1/b; ∂out/∂b = -a/b² (quotient rule), so
    ``grad_b = unbroadcast(-g * out / b)``. Saves: b and out (a/b² = out/b).
    """

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("div", a, b)
        out = a / b
        ctx.save_for_backward(b, out)
        ctx.shape_a = _shape(a)
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved
        return (
            unbroadcast(g / b, ctx.shape_a) if ctx.needs_input_grad[0] else None,
            unbroadcast(-g * out / b, _shape(b)) if ctx.needs_input_grad[1] else None,
        )


class Neg(Function):
    """``out = -x``. Gradient: -g. Saves nothing."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """``out = x ** p`` for a Python number ``p``.

    Gradient (power rule): ∂out/∂x = p·x^(p-1). Saves: x (and p).
    For p < 1 the gradient is infinite at x = 0, as it is mathematically.
    """

    @staticmethod
    def forward(ctx, x, *, p):
        if not isinstance(p, (int, float)) or isinstance(p, bool):
            raise TypeError(f"pow: exponent must be a Python int or float, got {type(p).__name__}")
        ctx.save_for_backward(x)
        ctx.p = p
        return x**p

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.p * x ** (ctx.p - 1)


class Exp(Function):
    """``out = exp(x)``. Gradient: ∂out/∂x = exp(x) = out. Saves: out."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * out


class Log(Function):
    """``out = ln(x)`` (natural log). Gradient: 1/x. Saves: x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


class Sqrt(Function):
    """``out = √x``. Gradient: 1/(2√x) = 1/(2·out). Saves: out."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g / (2 * out)


class Abs(Function):
    """``out = |x|``. Gradient: sign(x), taken as 0 at x = 0 (as PyTorch). Saves: x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.sign(x)


class Clip(Function):
    """``out = min(max(x, low), high)``; either bound may be None.

    Gradient: 1 where low ≤ x ≤ high (bounds included, as PyTorch's clamp),
    0 where the value was replaced by a bound. Saves: the pass-through mask.
    """

    @staticmethod
    def forward(ctx, x, *, low=None, high=None):
        xp = ctx.xp
        if low is None and high is None:
            raise ValueError("clip: give at least one of low and high")
        mask = xp.ones(x.shape, dtype=bool)
        if low is not None:
            mask &= x >= low
        if high is not None:
            mask &= x <= high
        ctx.save_for_backward(mask)
        return xp.clip(x, low, high)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g * mask


class ReLU(Function):
    """``out = max(x, 0)``. Gradient: 1 where x > 0, else 0 (0 at the kink). Saves: the mask."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x > 0)
        return ctx.xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g * mask


class Sigmoid(Function):
    """``out = σ(x) = 1 / (1 + e^{-x})``.

    Gradient: σ'(x) = σ(x)(1 - σ(x)) = out·(1 - out). Saves: out.
    Forward uses 1/(1 + e^{-x}) for x ≥ 0 and e^{x}/(1 + e^{x}) for x < 0,
    equal forms in which the exponential never overflows.
    """

    @staticmethod
    def forward(ctx, x):
        xp = ctx.xp
        # e^{-|x|} never overflows; pick the algebraically equal form per sign.
        e = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * out * (1 - out)


class Tanh(Function):
    """``out = tanh(x)``. Gradient: 1 - tanh²(x) = 1 - out². Saves: out."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return g * (1 - out * out)
