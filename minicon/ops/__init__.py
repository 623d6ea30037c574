"""The primitive differentiable ops, as functions and as ``Tensor`` methods.

Each function here is a thin call of one ``Function`` (see the submodules
for definitions and hand-derived gradients). Importing this package attaches
the operator overloads and methods PyTorch users expect to ``Tensor``.
"""

from __future__ import annotations

from ..autograd import Tensor
from .elementwise import Abs, Add, Clip, Div, Exp, Log, Mul, Neg, Pow, ReLU, Sigmoid, Sqrt, Sub, Tanh
from .linalg import MatMul
from .reduce import Max, Mean, Sum
from .shape import Concatenate, GetItem, Permute, Reshape, Stack
from .softmax import LogSoftmax, Softmax


def add(a, b) -> Tensor:
    """``a + b`` with broadcasting; either may be a Python number. See :class:`Add`."""
    return Add.apply(a, b)


def sub(a, b) -> Tensor:
    """``a - b`` with broadcasting. See :class:`Sub`."""
    return Sub.apply(a, b)


def mul(a, b) -> Tensor:
    """``a * b`` with broadcasting. See :class:`Mul`."""
    return Mul.apply(a, b)


def div(a, b) -> Tensor:
    """``a / b`` with broadcasting. See :class:`Div`."""
    return Div.apply(a, b)


def neg(x) -> Tensor:
    """``-x``. See :class:`Neg`."""
    return Neg.apply(x)


def pow(x, exponent) -> Tensor:  # noqa: A001 - the field's name, as torch.pow
    """``x ** exponent`` for a Python number ``exponent``. See :class:`Pow`."""
    return Pow.apply(x, p=exponent)


def matmul(a, b) -> Tensor:
    """``a @ b``, batched with broadcasting as ``numpy.matmul``. See :class:`MatMul`."""
    return MatMul.apply(a, b)


def exp(x) -> Tensor:
    """Elementwise ``e**x``. See :class:`Exp`."""
    return Exp.apply(x)


def log(x) -> Tensor:
    """Elementwise natural log. See :class:`Log`."""
    return Log.apply(x)


def sqrt(x) -> Tensor:
    """Elementwise square root. See :class:`Sqrt`."""
    return Sqrt.apply(x)


def abs(x) -> Tensor:  # noqa: A001
    """Elementwise ``|x|``. See :class:`Abs`."""
    return Abs.apply(x)


def clip(x, low=None, high=None) -> Tensor:
    """Clamp ``x`` to ``[low, high]`` (either may be None). See :class:`Clip`."""
    return Clip.apply(x, low=low, high=high)


def relu(x) -> Tensor:
    """``max(x, 0)``. See :class:`ReLU`."""
    return ReLU.apply(x)


def sigmoid(x) -> Tensor:
    """Logistic sigmoid. See :class:`Sigmoid`."""
    return Sigmoid.apply(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent. See :class:`Tanh`."""
    return Tanh.apply(x)


def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all; int or tuple). See :class:`Sum`."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Mean over ``axis``. See :class:`Mean`."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; the gradient goes to the first maximum. See :class:`Max`."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def reshape(x, *shape) -> Tensor:
    """``x`` with a new shape of the same size (one entry may be -1). See :class:`Reshape`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(x, shape=shape)


def permute(x, *axes) -> Tensor:
    """Reorder the axes: out's axis i is x's axis ``axes[i]``. See :class:`Permute`."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Permute.apply(x, axes=axes)


def transpose(x, dim0=-2, dim1=-1) -> Tensor:
    """Swap two axes (PyTorch's ``transpose``; default: the last two)."""
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(x, axes=tuple(axes))


def concatenate(tensors, axis=0) -> Tensor:
    """Join tensors along an existing axis. See :class:`Concatenate`."""
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0) -> Tensor:
    """Join same-shape tensors along a new axis. See :class:`Stack`."""
    return Stack.apply(*tensors, axis=axis)


def softmax(x, axis=-1) -> Tensor:
    """Softmax along ``axis``. See :class:`Softmax`."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1) -> Tensor:
    """Log-softmax along ``axis`` (log-sum-exp stable). See :class:`LogSoftmax`."""
    return LogSoftmax.apply(x, axis=axis)


def _getitem(x, index) -> Tensor:
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem.apply(x, index=index)


def _swap(fn):
    return lambda self, other: fn(other, self)


# Tensor's operators and math methods, as named in its docstring: each is an op of this package.
TENSOR_METHODS = {
    "__add__": add, "__radd__": _swap(add),
    "__sub__": sub, "__rsub__": _swap(sub),
    "__mul__": mul, "__rmul__": _swap(mul),
    "__truediv__": div, "__rtruediv__": _swap(div),
    "__matmul__": matmul, "__rmatmul__": _swap(matmul),
    "__neg__": neg, "__pow__": pow, "__abs__": abs,
    "__getitem__": _getitem,
    "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "clip": clip,
    "relu": relu, "sigmoid": sigmoid, "tanh": tanh,
    "sum": sum, "mean": mean, "max": max,
    "reshape": reshape, "permute": permute, "transpose": transpose,
    "softmax": softmax, "log_softmax": log_softmax,
}


def _attach_methods() -> None:
    """Give ``Tensor`` the methods of ``TENSOR_METHODS`` and ``T`` (done once, on import)."""
    for name, fn in TENSOR_METHODS.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))


_attach_methods()

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt", "abs",
    "clip", "relu", "sigmoid", "tanh", "sum", "mean", "max", "reshape", "permute",
    "transpose", "concatenate", "stack", "softmax", "log_softmax",
]
