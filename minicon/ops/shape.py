"""Ops that move elements without changing them: reshape, permute, indexing,
concatenation and stacking.

Each is a linear map that only relocates values, so its backward is the
adjoint relocation: put each upstream gradient element back where its
value came from (adding where one value went to several places).
"""

from __future__ import annotations

from ..autograd import Function


class Reshape(Function):
    """``out = x.reshape(shape)``.

    Gradient: reshape is a bijection of element positions, so
    ``grad_x = g.reshape(x.shape)``. Saves: the input shape.
    """

    @staticmethod
    def forward(ctx, x, *, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Permute(Function):
    """``out = x.transpose(axes)``: out's axis i is x's axis ``axes[i]``.

    Gradient: the adjoint of a permutation is its inverse, so
    ``grad_x = g.transpose(argsort(axes))``. Saves: the axes.
    """

    @staticmethod
    def forward(ctx, x, *, axes):
        axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(
                f"permute: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}"
            )
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        inverse = tuple(sorted(range(len(ctx.axes)), key=ctx.axes.__getitem__))
        return g.transpose(inverse)


def _is_basic_index(index) -> bool:
    """True when ``index`` uses only ints, slices, None and Ellipsis.

    Basic indexing never selects an element twice, so its backward can assign
    instead of accumulating.
    """
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class GetItem(Function):
    """``out = x[index]``: basic (ints, slices, None, ...) or integer/boolean array indexing.

    Gradient: each output element is a copy of one input element, so
    ``grad_x`` is zero except at the selected positions, which receive the
    upstream gradient. With integer arrays a position can be selected more
    than once; its gradient is then the SUM of all its copies' gradients,
    done with the unbuffered ``add.at`` (``z[idx] += g`` would keep only one
    copy, on NumPy by buffering and on CuPy by a race).
    Saves: the index and the input shape.
    """

    @staticmethod
    def forward(ctx, x, *, index):
        ctx.index, ctx.shape, ctx.dtype = index, x.shape, x.dtype
        try:
            return x[index]
        except IndexError as exc:
            raise IndexError(f"getitem: {exc} (tensor shape {x.shape})") from None

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        grad = xp.zeros(ctx.shape, dtype=g.dtype)
        if _is_basic_index(ctx.index):
            grad[ctx.index] = g
        else:
            xp.add.at(grad, ctx.index, g)
        return grad


class Concatenate(Function):
    """``out = concatenate(xs, axis)``; each input keeps its slab of ``out``.

    Gradient: input k's gradient is the slab of ``g`` it occupies along
    ``axis``. Shapes: inputs agree except along ``axis``. Saves: the split points.
    """

    @staticmethod
    def forward(ctx, *xs, axis=0):
        xp = ctx.xp
        if not xs:
            raise ValueError("concatenate: needs at least one tensor")
        try:
            out = xp.concatenate(xs, axis=axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(
                f"concatenate: shapes {shapes} differ outside axis {axis}"
            ) from None
        ctx.axis = axis % out.ndim
        sizes = [x.shape[ctx.axis] for x in xs]
        ctx.bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        return out

    @staticmethod
    def backward(ctx, g):
        b, ax = ctx.bounds, ctx.axis
        lead = (slice(None),) * ax
        return tuple(g[lead + (slice(b[i], b[i + 1]),)] for i in range(len(b) - 1))


class Stack(Function):
    """``out = stack(xs, axis)``: a new axis of length ``len(xs)``.

    Gradient: input k's gradient is ``g`` at index k of the new axis.
    Shapes: all inputs have the same shape. Saves: the axis and the count.
    """

    @staticmethod
    def forward(ctx, *xs, axis=0):
        xp = ctx.xp
        if not xs:
            raise ValueError("stack: needs at least one tensor")
        if len({x.shape for x in xs}) > 1:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"stack: all tensors need one shape, got {shapes}")
        out = xp.stack(xs, axis=axis)
        ctx.axis, ctx.count = axis % out.ndim, len(xs)
        return out

    @staticmethod
    def backward(ctx, g):
        moved = ctx.xp.moveaxis(g, ctx.axis, 0)
        return tuple(moved[k] for k in range(ctx.count))
