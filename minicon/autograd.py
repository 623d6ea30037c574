"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and the engine.

A ``Tensor`` wraps one array of the current backend. Calling an op
(a ``Function`` subclass) on tensors runs its hand-written ``forward`` on the
arrays and, when any input requires a gradient and grad mode is on, records a
``Node`` on the output: the op, its ``Context`` (what forward saved) and the
input tensors. ``Tensor.backward`` walks those nodes from the output back to
the leaves in reverse topological order and calls each op's ``backward``.

The graph holds references only from outputs to inputs, never back, so once
the last output is dropped reference counting frees the whole graph.

The operator methods of ``Tensor`` (``+``, ``@``, ``.sum()`` ...) are
attached by :mod:`minicon.ops`, which sits above this module.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from . import backend

_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops record graphs (True unless inside :func:`no_grad`)."""
    return getattr(_grad_mode, "enabled", True)


@contextmanager
def no_grad():
    """Context manager under which ops record no graph (for eval and updates).

    Tensors made inside have ``requires_grad=False`` and keep no reference to
    their inputs. Grad mode is per thread, as in PyTorch.
    """
    previous = is_grad_enabled()
    _grad_mode.enabled = False
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def _is_float(dtype) -> bool:
    return dtype.kind == "f"  # real only: every backward here is derived for real inputs


class Tensor:
    """An n-dimensional array with an optional gradient.

    Parameters
    ----------
    data : array_like
        An array of either backend, a list or a scalar. Lists and Python
        floats become float32 (the default dtype), Python ints int64; arrays
        keep their dtype. Data of the other backend is moved to the current one.
    requires_grad : bool
        Whether ``backward`` should fill ``.grad``. Only real floating tensors
        can require gradients.

    Attributes
    ----------
    data : xp.ndarray
        The values.
    grad : xp.ndarray or None
        Accumulated gradient of a leaf after ``backward``; same shape and dtype
        as ``data``.

    Raises
    ------
    TypeError
        If ``requires_grad`` is asked of an integer, boolean or complex tensor.

    Operators and math methods
    --------------------------
    ``+ - * / @ ** unary- abs() t[index]`` and ``exp log sqrt abs clip relu
    sigmoid tanh sum mean max reshape permute transpose softmax log_softmax``
    and the property ``T`` are not written in this class: each is an op of
    :mod:`minicon.ops` (a ``Function`` with its hand-derived backward), and
    ``minicon/ops/__init__.py`` attaches them here (``_attach_methods``, its
    table ``TENSOR_METHODS``) when minicon is imported. The engine sits below
    the ops in the import graph, so this file cannot import them; ``t + u``
    is exactly ``minicon.ops.add(t, u)``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")
    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = backend.asarray(data)
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"only real floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None

    @classmethod
    def _wrap(cls, array, node=None) -> "Tensor":
        """A tensor around ``array`` as it is (no copy, no backend move)."""
        t = object.__new__(cls)
        t.data = array
        t.grad = None
        t._node = node
        t.requires_grad = node is not None
        return t

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by an op."""
        return self._node is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_host(self.data)!r}{grad})"

    def detach(self) -> "Tensor":
        """The same data (shared, not copied) cut from the graph."""
        return Tensor._wrap(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self):
        """A NumPy array on the host (a copy for CuPy data)."""
        return backend.to_host(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad``.

        Parameters
        ----------
        grad : array_like, optional
            Upstream gradient, same shape as ``self``. May be omitted only for
            a tensor with one element (it is then 1).

        Raises
        ------
        RuntimeError
            If ``self`` does not require grad, or ``grad`` is omitted for a
            non-scalar, or an op's backward returns a gradient whose shape is
            not its input's (the message names the op).

        Notes
        -----
        The graph is kept, so calling ``backward`` twice adds each leaf's
        gradient twice; intermediate gradients live only for one call.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        xp = backend.array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output, got shape "
                    f"{self.shape}; pass grad= of that shape or reduce first (e.g. .sum())"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise RuntimeError(
                    f"backward(): grad has shape {grad.shape}, tensor has shape {self.shape}"
                )
        _run_backward(self, grad)


def _topological_order(root: Tensor) -> list:
    """Tensors reachable from ``root`` through nodes, inputs before outputs.

    Iterative depth-first search, so a chain of any length never reaches
    Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._node is not None:
            for parent in tensor._node.inputs:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _run_backward(root: Tensor, grad) -> None:
    grads = {id(root): grad}
    for tensor in reversed(_topological_order(root)):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        node = tensor._node
        if node is None:
            tensor.grad = g.copy() if tensor.grad is None else tensor.grad + g
            continue
        input_grads = node.fn.backward(node.ctx, g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        name = node.fn.__name__
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{name}.backward returned {len(input_grads)} gradients for "
                f"{len(node.inputs)} inputs"
            )
        for i, (parent, pg) in enumerate(zip(node.inputs, input_grads)):
            if parent is None or pg is None or not parent.requires_grad:
                continue
            if pg.shape != parent.shape:
                raise RuntimeError(
                    f"{name}.backward returned a gradient of shape {pg.shape} for input {i} "
                    f"of shape {parent.shape}"
                )
            if pg.dtype != parent.dtype:
                # the forward promoted this input to the output's dtype (float32 * float64 is
                # float64); the adjoint of that implicit upcast is the downcast. Any other
                # dtype is a bug in the op's backward.
                if pg.dtype != tensor.dtype or backend.array_module(pg).result_type(parent.dtype, pg.dtype) != pg.dtype:
                    raise RuntimeError(
                        f"{name}.backward returned a gradient of dtype {pg.dtype} for input {i} "
                        f"of dtype {parent.dtype} (output dtype {tensor.dtype})"
                    )
                pg = pg.astype(parent.dtype)
            key = id(parent)
            grads[key] = pg if key not in grads else grads[key] + pg


class Context:
    """What an op's ``forward`` keeps for its ``backward``.

    ``save_for_backward(*arrays)`` stores arrays in ``saved``; any other
    attribute (an axis, a shape) can be set directly. ``needs_input_grad``
    tells, per positional input, whether its gradient will be used, so a
    backward can skip work. ``xp`` is the inputs' array module.
    """

    def __init__(self, xp, needs_input_grad):
        self.xp = xp
        self.needs_input_grad = needs_input_grad
        self.saved = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays


class Node:
    """One recorded op: its ``Function``, its ``Context`` and its inputs."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn, ctx, inputs):
        self.fn, self.ctx, self.inputs = fn, ctx, inputs


class Function:
    """Base class of every op: a hand-written ``forward`` and ``backward``.

    Subclasses define two static methods::

        forward(ctx, *operands, **options) -> xp.ndarray
        backward(ctx, grad_out) -> one gradient (or None) per operand

    Operands are positional: tensors (``forward`` receives their arrays),
    arrays or Python numbers. Options (an axis, a shape, an exponent) are
    keyword-only and never get a gradient. ``backward`` returns one gradient
    per operand (a bare array when there is one operand), None where no
    gradient is needed, each of its operand's shape and dtype, or of the
    output's dtype for an operand the forward promoted (float32 × float64;
    the engine casts that one back). Any other shape or dtype is a
    RuntimeError naming the op. Call an op with
    ``MyFunction.apply(*operands, **options)``.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        xp = backend.array_module(*arrays, op=cls.__name__)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = any(needs) and is_grad_enabled()
        ctx = Context(xp, needs)
        out = cls.forward(ctx, *arrays, **kwargs)
        if not record or not _is_float(out.dtype):
            return Tensor._wrap(out)
        inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
        return Tensor._wrap(out, Node(cls, ctx, inputs))


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting.

    The gradient of a broadcast input is the sum of the upstream gradient
    over every axis along which the input was repeated: the leading axes that
    broadcasting prepended and the axes where the input had length 1. This is
    the one place where broadcast gradients are reduced.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    repeated = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if repeated:
        grad = grad.sum(axis=repeated, keepdims=True)
    return grad
