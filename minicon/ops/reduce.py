"""Reductions over axes: sum, mean, max.

Every backward first puts the reduced axes back as length-1 axes (when
``keepdims=False`` removed them) so ``g`` broadcasts against the input.
"""

from __future__ import annotations

from ..autograd import Function


def normalize_axes(axis, ndim: int, op: str = "reduce") -> tuple:
    """``axis`` (None, an int or a tuple, negatives allowed) as sorted non-negative ints.

    Raises
    ------
    ValueError
        If an axis is out of range for ``ndim`` dimensions (names ``op``).
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """``out = Σ_{axes} x``.

    Gradient: every input element contributes once to its output element, so
    ∂out/∂x = 1 and ``grad_x = g`` broadcast back over the reduced axes.
    Shapes: x any; out drops (or keeps as 1) the reduced axes.
    Saves: the input shape and the axes.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes(axis, x.ndim, "sum")
        ctx.shape = x.shape
        return x.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        g = g.reshape(_keepdims_shape(ctx.shape, ctx.axes))
        return ctx.xp.broadcast_to(g, ctx.shape).copy()


class Mean(Function):
    """``out = (1/M) Σ_{axes} x`` with M the number of reduced elements.

    Gradient: ∂out/∂x = 1/M for every element, so ``grad_x = g / M`` broadcast
    back. Saves: the input shape and the axes.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes(axis, x.ndim, "mean")
        ctx.shape = x.shape
        return x.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        count = 1
        for a in ctx.axes:
            count *= ctx.shape[a]
        g = g.reshape(_keepdims_shape(ctx.shape, ctx.axes)) / count
        return ctx.xp.broadcast_to(g, ctx.shape).copy()


class Max(Function):
    """``out = max_{axes} x``.

    Gradient: max is piecewise the identity of its largest element, so the
    whole of ``g`` flows to one element per output: the first maximum in
    row-major order over the reduced axes (as ``torch.max(x, dim)``), 0
    elsewhere. Ties are a kink; this choice keeps the gradient a valid
    subgradient. Saves: a one-hot mask of the chosen elements.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = ctx.xp
        axes = normalize_axes(axis, x.ndim, "max")
        if x.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
        k = len(axes)
        # Move the reduced axes last and flatten them, so one argmax finds the
        # first maximum in row-major order over all of them.
        moved = xp.moveaxis(x, axes, tuple(range(x.ndim - k, x.ndim)))
        flat = moved.reshape(moved.shape[: x.ndim - k] + (-1,))
        first = flat.argmax(axis=-1)
        onehot = xp.arange(flat.shape[-1]) == first[..., None]
        mask = xp.moveaxis(onehot.reshape(moved.shape), tuple(range(x.ndim - k, x.ndim)), axes)
        ctx.save_for_backward(mask)
        ctx.axes, ctx.shape = axes, x.shape
        return x.max(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g.reshape(_keepdims_shape(ctx.shape, ctx.axes)) * mask
