"""Semantics of the engine: accumulation, ordering, graph lifetime, dtypes, errors."""

import gc
import re
import sys
import threading
import weakref

import numpy as np
import pytest

import minicon
from minicon import Function, Tensor


def leaf(xp, values, dtype=None):
    return Tensor(xp.asarray(values, dtype=dtype or xp.float64), requires_grad=True)


def test_diamond_accumulates_every_path(xp):
    # x feeds y twice (x*x) and z once: d/dx (x*x + x) = 2x + 1.
    x = leaf(xp, [1.5, -2.0])
    y = x * x
    (y + x).sum().backward()
    np.testing.assert_allclose(minicon.to_host(x.grad), [4.0, -3.0])


def test_shared_intermediate_gets_both_contributions(xp):
    x = leaf(xp, [2.0])
    h = x * 3.0  # used by two branches
    out = h * h + h.exp()
    out.sum().backward()
    expected = 2 * 6.0 * 3.0 + np.exp(6.0) * 3.0
    np.testing.assert_allclose(minicon.to_host(x.grad), [expected])


def test_chain_of_ten_thousand_ops_does_not_recurse(xp):
    limit = sys.getrecursionlimit()
    x = leaf(xp, [1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(minicon.to_host(x.grad), [1.0001**10_000], rtol=1e-9)


def test_backward_twice_adds_leaf_gradients_exactly_twice(xp):
    x = leaf(xp, [1.0, 2.0])
    h = x * 2.0
    out = (h * 3.0).sum()
    out.backward()
    np.testing.assert_allclose(minicon.to_host(x.grad), [6.0, 6.0])
    out.backward()
    np.testing.assert_allclose(minicon.to_host(x.grad), [12.0, 12.0])
    assert h.grad is None  # intermediates keep no gradient that could compound


def test_backward_on_non_scalar_needs_grad(xp):
    x = leaf(xp, [1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"one-element output, got shape \(2,\)"):
        (x * 2.0).backward()
    (x * 2.0).backward(xp.asarray([1.0, 10.0]))
    np.testing.assert_allclose(minicon.to_host(x.grad), [2.0, 20.0])
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\)"):
        (x * 2.0).backward(xp.ones(3))


def test_backward_without_requires_grad_is_an_error(xp):
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(xp.ones(2)).sum().backward()


def test_no_grad_records_nothing_and_restores(xp):
    x = leaf(xp, [1.0])
    with minicon.no_grad():
        y = x * 2.0
        with minicon.no_grad():
            pass
        assert not minicon.is_grad_enabled()
    assert minicon.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert (x * 2.0).requires_grad


def test_no_grad_is_per_thread(xp):
    seen = []
    with minicon.no_grad():
        t = threading.Thread(target=lambda: seen.append(minicon.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_graph_is_freed_once_unreachable(xp):
    gc.disable()  # reference counting alone must free it: the graph has no cycles
    try:
        x = leaf(xp, np.ones(3))
        h = (x * 2.0).exp()
        out = h.sum()
        probes = [weakref.ref(h), weakref.ref(h._node.ctx)]
        out.backward()
        del h, out
        assert all(p() is None for p in probes)
    finally:
        gc.enable()


def test_integer_bool_and_complex_tensors_never_get_gradients(xp):
    with pytest.raises(TypeError, match="only real floating-point tensors"):
        Tensor(xp.asarray([1, 2]), requires_grad=True)
    with pytest.raises(TypeError):
        Tensor(xp.asarray([True]), requires_grad=True)
    for dtype in (xp.complex64, xp.complex128):  # no backward here is derived for complex inputs
        with pytest.raises(TypeError, match=f"got dtype {np.dtype(dtype)}"):
            Tensor(xp.asarray([1 + 2j], dtype=dtype), requires_grad=True)
    assert not Tensor(xp.asarray([1 + 2j])).requires_grad  # complex values without gradients are fine
    w = leaf(xp, [1.0, 2.0], xp.float32)
    idx = Tensor(xp.asarray([1, 0]))
    assert not (idx * 2).requires_grad
    (w * idx).sum().backward()
    np.testing.assert_allclose(minicon.to_host(w.grad), [1.0, 0.0])
    assert idx.grad is None


def test_python_scalars_keep_float32(xp):
    x = leaf(xp, [1.0, 2.0], xp.float32)
    for y in (x + 1.5, 2.0 * x, x / 3.0, 1.0 - x, x**2.0, 2.0 / x):
        assert y.dtype == np.float32
    assert (Tensor(xp.asarray([1, 2])) * 1.5).dtype == np.float64  # NumPy: int64 * float -> float64


def test_array_promotion_follows_numpy_and_grad_keeps_leaf_dtype(xp):
    x = leaf(xp, [1.0, 2.0], xp.float32)
    c = Tensor(xp.asarray([3.0, 4.0], dtype=xp.float64))
    y = x * c
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32


class _WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g[:1]


class _TooMany(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g, g


class _WrongDtype(Function):
    """float32 in, float32 out, but a float64 gradient: a bug the engine must not hide."""

    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g.astype("float64")


class _Promoting(Function):
    """float32 × float64 → float64, as NumPy promotes; its input gradients are float64."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g * b, g * a


def test_engine_refuses_a_gradient_of_the_wrong_dtype_and_names_the_op(xp):
    x = leaf(xp, [1.0, 2.0], xp.float32)
    with pytest.raises(RuntimeError, match=r"_WrongDtype.backward returned a gradient of dtype float64 "
                                           r"for input 0 of dtype float32 \(output dtype float32\)"):
        _WrongDtype.apply(x).sum().backward()
    assert x.grad is None


def test_a_promoted_input_gets_its_gradient_back_in_its_own_dtype(xp):
    # the forward's implicit float32 -> float64 cast has the downcast as its adjoint
    a, b = leaf(xp, [1.0, 2.0], xp.float32), leaf(xp, [3.0, 4.0], xp.float64)
    out = _Promoting.apply(a, b)
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(minicon.to_host(a.grad), [3.0, 4.0])


def test_engine_checks_gradient_shapes_and_names_the_op(xp):
    x = leaf(xp, [1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"_WrongShape.backward returned a gradient of shape \(1,\) for input 0 of shape \(2,\)"):
        _WrongShape.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="_TooMany.backward returned 2 gradients for 1 inputs"):
        _TooMany.apply(x).sum().backward()


def test_detach_item_numpy(xp):
    x = leaf(xp, [[3.0]])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    assert d.item() == 6.0
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="one element"):
        Tensor(xp.ones(2)).item()


def test_repr_and_len(xp):
    x = leaf(xp, [1.0, 2.0])
    assert "requires_grad=True" in repr(x) and len(x) == 2


def test_every_operator_attached_to_tensor_is_named_in_its_docstring():
    from minicon.ops import TENSOR_METHODS

    for name, fn in TENSOR_METHODS.items():
        assert getattr(Tensor, name) is fn
        if not name.startswith("__"):
            assert re.search(rf"\b{name}\b", Tensor.__doc__), name
    for symbol in ("+", "-", "*", "/", "@", "**", "t[index]", "``T``"):
        assert symbol in Tensor.__doc__
