"""Reductions: sum, mean, max over hypothesis-drawn axes, with keepdims."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicon
from minicon import Tensor, gradcheck

from .strategies import arrays, distinct, shapes_with_scalar, small_shapes


def param(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


@st.composite
def array_and_axis(draw, shapes=small_shapes):
    values = draw(arrays(shapes))
    ndim = values.ndim
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none" or ndim == 0:
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:
        axis = tuple(draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
    return values, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@given(case=array_and_axis(shapes_with_scalar))
def test_reductions_values_and_gradients(xp, name, case):
    values, axis, keepdims = case
    if name == "max":
        values = distinct(values)  # ties are a kink; tested separately below
    op = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    expected = getattr(np, name)(values, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(minicon.to_host(op(param(xp, values)).data), expected, rtol=1e-12)
    gradcheck(op, param(xp, values))


def test_max_tie_sends_gradient_to_first_maximum(xp):
    x = param(xp, [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(minicon.to_host(x.grad), [[0, 1, 0], [1, 0, 0]])
    y = param(xp, [[5.0, 1.0], [5.0, 5.0]])
    y.max().backward()  # over all axes: first in row-major order
    np.testing.assert_array_equal(minicon.to_host(y.grad), [[1, 0], [0, 0]])


def test_golden_sum_and_mean(xp):
    x = param(xp, [[1.0, 2.0], [3.0, 4.0]])
    assert x.sum().item() == 10.0
    np.testing.assert_array_equal(minicon.to_host(x.mean(axis=0).data), [2.0, 3.0])
    x.mean().backward()
    np.testing.assert_array_equal(minicon.to_host(x.grad), np.full((2, 2), 0.25))


def test_sum_of_parts_equals_whole(xp):
    values = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(xp.asarray(values))
    assert x.sum(axis=(0, 2)).sum().item() == x.sum().item() == values.sum()


def test_bad_axis_names_the_op(xp):
    with pytest.raises(ValueError, match="sum: axis 2 is out of range for a tensor with 2 dimensions"):
        param(xp, np.ones((2, 2))).sum(axis=2)
    with pytest.raises(ValueError, match="max: cannot reduce an empty tensor"):
        Tensor(xp.ones((0, 2))).max()
