"""Batched matmul with broadcasting, softmax and log-softmax."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicon
from minicon import Tensor, gradcheck

from .strategies import arrays, small_shapes


def param(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


def host(t):
    return minicon.to_host(t.data)


@st.composite
def matmul_shapes(draw):
    """Shapes of a and b for ``a @ b``: batch axes that broadcast, or 1-D operands."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
    ).input_shapes
    shape_a = (k,) if draw(st.booleans()) and not batch_a else batch_a + (n, k)
    shape_b = (k,) if draw(st.booleans()) and not batch_b else batch_b + (k, m)
    return shape_a, shape_b


@given(shapes=matmul_shapes(), data=st.data())
def test_matmul_values_and_gradients(xp, shapes, data):
    a = data.draw(arrays(shapes[0]))
    b = data.draw(arrays(shapes[1]))
    out = param(xp, a) @ param(xp, b)
    np.testing.assert_allclose(host(out), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    gradcheck(lambda s, t: s @ t, param(xp, a), param(xp, b))


def test_matmul_golden_and_constant_operand(xp):
    a = param(xp, [[1.0, 2.0], [3.0, 4.0]])
    b = Tensor(xp.asarray([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_array_equal(host(a @ b), [[2.0, 1.0], [4.0, 3.0]])
    (a @ b).sum().backward()  # d/da sum(a b) = 1 bᵀ
    np.testing.assert_array_equal(minicon.to_host(a.grad), [[1.0, 1.0], [1.0, 1.0]])
    assert b.grad is None


def test_matmul_shape_errors(xp):
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\) do not align"):
        param(xp, np.ones((2, 3))) @ param(xp, np.ones((2, 3)))
    with pytest.raises(ValueError, match="matmul: shapes"):
        param(xp, np.ones((2, 2, 3))) @ param(xp, np.ones((3, 3, 4)))


@st.composite
def array_and_axis(draw):
    values = draw(arrays(small_shapes, -10, 10))
    return values, draw(st.integers(-values.ndim, values.ndim - 1))


def np_log_softmax(v, axis):
    m = v.max(axis=axis, keepdims=True)
    return v - m - np.log(np.exp(v - m).sum(axis=axis, keepdims=True))


@given(case=array_and_axis())
def test_softmax_and_log_softmax(xp, case):
    values, axis = case
    s = param(xp, values).softmax(axis=axis)
    ls = param(xp, values).log_softmax(axis=axis)
    np.testing.assert_allclose(host(ls), np_log_softmax(values, axis), atol=1e-12)
    np.testing.assert_allclose(host(s), np.exp(np_log_softmax(values, axis)), atol=1e-12)
    np.testing.assert_allclose(host(s).sum(axis=axis), 1.0, rtol=1e-12)
    gradcheck(lambda t: t.softmax(axis=axis), param(xp, values))
    gradcheck(lambda t: t.log_softmax(axis=axis), param(xp, values))


def test_softmax_is_shift_invariant_and_stable_in_float32(xp):
    x = np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]], dtype=np.float32)
    t = param(xp, x)
    s = host(t.softmax(axis=1))
    ls = host(t.log_softmax(axis=1))
    assert s.dtype == np.float32 and np.all(np.isfinite(s)) and np.all(np.isfinite(ls))
    np.testing.assert_allclose(s[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(s[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(host((t + 50.0).softmax(axis=1)), s, rtol=1e-6)
    t.log_softmax(axis=1).sum().backward()
    assert np.all(np.isfinite(minicon.to_host(t.grad)))


def test_golden_log_softmax(xp):
    t = param(xp, [0.0, np.log(3.0)])
    np.testing.assert_allclose(host(t.softmax()), [0.25, 0.75])
    np.testing.assert_allclose(host(t.log_softmax()), [np.log(0.25), np.log(0.75)])
