"""Ops that move elements without changing them: reshape, permute, indexing,
concatenation and stacking.

Each is a linear map that only relocates values, so its backward is the
adjoint relocation: put each upstream gradient element back where its
value came from (adding where one value went to several places).
"""

from __future__ import annotations

from .. import backend
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


def _is_array(p) -> bool:
    return getattr(p, "dtype", None) is not None and getattr(p, "ndim", 0) > 0


def _prepared_index(xp, index, shape: tuple, check: bool = True):
    """``index`` with its integer arrays bounds-checked and on ``xp``'s device.

    IndexError for an entry outside ``[-n, n)`` of its axis: NumPy raises for
    these itself, but CuPy wraps them around silently, so both are checked
    here, with NumPy's message. Host arrays (and lists) are checked on the
    host and then uploaded once; a CuPy index array costs one wait for the
    GPU, so callers on a hot path pass host indices (or ``check=False``
    after checking them).
    """
    single = not isinstance(index, tuple)
    parts = [backend.to_host(p) if isinstance(p, list) else p for p in ((index,) if single else index)]
    consumed = sum(p.ndim if _is_array(p) and p.dtype.kind == "b" else 1
                   for p in parts if p is not None and p is not Ellipsis)
    axis = 0
    for k, p in enumerate(parts):
        if p is Ellipsis:
            axis += len(shape) - consumed
        elif p is None:
            continue
        elif _is_array(p) and p.dtype.kind == "b":
            axis += p.ndim
        else:
            if _is_array(p) and p.dtype.kind in "iu" and axis < len(shape):
                n = shape[axis]
                bad = backend.out_of_range(p, -n, n) if check else None
                if bad:
                    value = bad[1] if bad[1] >= n else bad[0]
                    raise IndexError(f"getitem: index {value} is out of bounds for axis {axis} "
                                     f"with size {n} (tensor shape {shape})")
            axis += 1
        if _is_array(p) and backend.is_cupy_array(p) != (xp.__name__ == "cupy"):
            parts[k] = xp.asarray(p)
    return parts[0] if single else tuple(parts)


class GetItem(Function):
    """``out = x[index]``: basic (ints, slices, None, ...) or integer/boolean array indexing.

    Gradient: each output element is a copy of one input element, so
    ``grad_x`` is zero except at the selected positions, which receive the
    upstream gradient. With integer arrays a position can be selected more
    than once; its gradient is then the SUM of all its copies' gradients
    (``z[idx] += g`` would keep only one copy, on NumPy by buffering and on
    CuPy by a race):

    * one integer array selecting rows (``x[ids]``, the embedding lookup):
      with ``u`` the distinct ids and ``M[j, t] = [ids_t = u_j]``, the rows'
      gradients are ``M @ G`` (G: one row per lookup), a GEMM whose order of
      summation is fixed, so a CuPy run repeats bit for bit;
    * any other mix of arrays: the unbuffered ``add.at``, on CuPy an atomic
      add whose order (so float rounding) varies between runs.

    Saves: the index (its host arrays uploaded) and the input shape.
    ``checked=True`` skips the bounds check, for callers that checked already.

    Raises
    ------
    IndexError
        For an index out of range (also on CuPy, which would wrap it).
    """

    @staticmethod
    def forward(ctx, x, *, index, checked=False):
        index = _prepared_index(ctx.xp, index, x.shape, check=not checked)
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
        elif getattr(ctx.index, "dtype", None) is not None and ctx.index.dtype.kind in "iu":
            _add_rows_in_fixed_order(xp, grad, ctx.index, g)
        else:
            xp.add.at(grad, ctx.index, g)
        return grad


def _add_rows_in_fixed_order(xp, grad, ids, g) -> None:
    """``grad[ids[t]] += g[t]`` for every lookup t, as one-hot GEMMs over the distinct ids.

    The one-hot matrix is cut into chunks of lookups of at most ``_ONE_HOT_BYTES``.
    Cost: U·T·R multiply-adds for T lookups of U distinct ids and rows of R
    values, against add.at's T·R: cheap for a vocabulary lookup (U small), a
    T²·R for a permutation of T rows.
    """
    if ids.size == 0:
        return
    n = grad.shape[0]
    ids = xp.asarray(ids).ravel() % n  # negative ids counted from the end, as in forward
    rows = g.reshape(ids.size, -1)
    distinct, which = xp.unique(ids, return_inverse=True)
    which = which.ravel()
    slots = xp.arange(distinct.size)[:, None]
    total = xp.zeros((distinct.size, rows.shape[1]), dtype=g.dtype)
    step = max(1, _ONE_HOT_BYTES // (distinct.size * g.dtype.itemsize))
    for start in range(0, ids.size, step):
        one_hot = (which[None, start:start + step] == slots).astype(g.dtype)
        total += one_hot @ rows[start:start + step]
    grad.reshape(n, -1)[distinct] = total


_ONE_HOT_BYTES = 16 << 20


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
