"""Elementwise ops: values against NumPy, gradients against finite differences,
golden values and identities. Inputs are kept away from kinks and poles."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicon
from minicon import Tensor, gradcheck

from .strategies import arrays, away_from, broadcastable_pair, non_contiguous, small_shapes


def param(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


def host(t):
    return minicon.to_host(t.data if isinstance(t, Tensor) else t)


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_ops_broadcast_values_and_gradients(xp, name, data):
    shape_a, shape_b = data.draw(broadcastable_pair())
    a = data.draw(arrays(shape_a))
    b = data.draw(arrays(shape_b))
    if name == "div":
        b = np.sign(b) * (np.abs(b) + 0.5) + (b == 0) * 0.5  # keep away from the pole at 0
    op, ref = BINARY[name]
    out = op(param(xp, a), param(xp, b))
    np.testing.assert_allclose(host(out), ref(a, b), rtol=1e-12)
    gradcheck(op, param(xp, a), param(xp, b))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_ops_with_python_scalar_on_either_side(xp, name):
    op, ref = BINARY[name]
    a = np.array([1.0, -2.0, 4.0])
    np.testing.assert_allclose(host(op(param(xp, a), 2.0)), ref(a, 2.0))
    np.testing.assert_allclose(host(op(2.0, param(xp, a))), ref(2.0, a))
    gradcheck(lambda t: op(t, 2.0), param(xp, a))
    gradcheck(lambda t: op(2.0, t), param(xp, a))


def test_broadcast_error_names_op(xp):
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
        param(xp, np.ones((2, 3))) * param(xp, np.ones(2))


# name -> (op, numpy reference, transform of drawn values that keeps them in the domain and off kinks)
UNARY = {
    "neg": (lambda x: -x, np.negative, lambda v: v),
    "exp": (minicon.exp, np.exp, lambda v: v),
    "log": (minicon.log, np.log, lambda v: np.abs(v) + 0.1),
    "sqrt": (minicon.sqrt, np.sqrt, lambda v: np.abs(v) + 0.1),
    "abs": (minicon.abs, np.abs, lambda v: away_from(v, [0.0], 1e-2)),
    "relu": (minicon.relu, lambda v: np.maximum(v, 0), lambda v: away_from(v, [0.0], 1e-2)),
    "sigmoid": (minicon.sigmoid, lambda v: 1 / (1 + np.exp(-v)), lambda v: 3 * v),
    "tanh": (minicon.tanh, np.tanh, lambda v: v),
    "clip": (lambda x: x.clip(-1.0, 0.5), lambda v: np.clip(v, -1.0, 0.5), lambda v: away_from(v, [-1.0, 0.5], 1e-2)),
    "pow 3": (lambda x: x**3, lambda v: v**3, lambda v: v),
    "pow -1.5": (lambda x: x**-1.5, lambda v: v**-1.5, lambda v: np.abs(v) + 0.2),
    "pow 0.5": (lambda x: x**0.5, np.sqrt, lambda v: np.abs(v) + 0.1),
}


@pytest.mark.parametrize("name", UNARY)
@given(values=arrays(small_shapes))
def test_unary_ops_values_and_gradients(xp, name, values):
    op, ref, prepare = UNARY[name]
    v = prepare(values)
    np.testing.assert_allclose(host(op(param(xp, v))), ref(v), rtol=1e-12, atol=1e-300)
    gradcheck(op, param(xp, v))


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "neg", "pow 3"])
@given(values=non_contiguous())
def test_unary_ops_on_non_contiguous_views(xp, name, values):
    op, ref, prepare = UNARY[name]
    x = param(xp, values)  # xp.asarray keeps NumPy's stride on the NumPy backend
    np.testing.assert_allclose(host(op(x)), ref(values), rtol=1e-12)
    gradcheck(op, x)


def test_golden_values(xp):
    x = param(xp, [-2.0, 0.0, 3.0])
    np.testing.assert_allclose(host(x * x + 2.0 * x), [0.0, 0.0, 15.0])
    np.testing.assert_allclose(host(minicon.relu(x)), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(host(minicon.sigmoid(x)), [0.11920292202211755, 0.5, 0.9525741268224334])
    y = (x * x * x).sum()  # d/dx x^3 = 3x^2
    y.backward()
    np.testing.assert_allclose(host(x.grad), [12.0, 0.0, 27.0])


def test_kink_conventions(xp):
    x = param(xp, [0.0, 0.0, 1.0])
    (minicon.relu(x) + minicon.abs(x)).sum().backward()
    np.testing.assert_allclose(host(x.grad), [0.0, 0.0, 2.0])  # relu'(0) = |.|'(0) = 0
    c = param(xp, [-1.0, 0.0, 1.0])
    c.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_allclose(host(c.grad), [1.0, 1.0, 1.0])  # bounds pass the gradient, as torch.clamp


@given(values=arrays(small_shapes, -5, 5))
def test_identities(xp, values):
    x = Tensor(xp.asarray(values))
    np.testing.assert_allclose(host(minicon.sigmoid(x) + minicon.sigmoid(-x)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(host(minicon.tanh(x)), host(2.0 * minicon.sigmoid(2.0 * x) - 1.0), atol=1e-12)
    np.testing.assert_allclose(host(minicon.log(minicon.exp(x))), values, atol=1e-12)


def test_sigmoid_is_finite_at_extremes(xp):
    x = param(xp, np.array([-1000.0, 1000.0], dtype=np.float32))
    y = minicon.sigmoid(x)
    np.testing.assert_array_equal(host(y), [0.0, 1.0])
    y.sum().backward()
    assert np.all(np.isfinite(host(x.grad)))


def test_pow_needs_a_python_number(xp):
    with pytest.raises(TypeError, match="pow: exponent must be a Python int or float"):
        param(xp, [1.0]) ** param(xp, [2.0])


def test_clip_needs_a_bound(xp):
    with pytest.raises(ValueError, match="clip: give at least one"):
        minicon.clip(param(xp, [1.0]))
