"""Shape ops: reshape, permute/transpose, getitem, concatenate, stack."""

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


@given(values=arrays(small_shapes), data=st.data())
def test_reshape(xp, values, data):
    target = data.draw(st.sampled_from([(-1,), (values.size, 1), (1, -1, 1), values.shape[::-1]]))
    if np.prod(target) not in (values.size, -values.size):
        target = (-1,)
    out = param(xp, values).reshape(target)
    np.testing.assert_array_equal(host(out), values.reshape(target))
    gradcheck(lambda t: t.reshape(target) * 2.0, param(xp, values))


@given(values=arrays(small_shapes), data=st.data())
def test_permute_and_transpose(xp, values, data):
    axes = tuple(data.draw(st.permutations(range(values.ndim))))
    np.testing.assert_array_equal(host(param(xp, values).permute(*axes)), values.transpose(axes))
    gradcheck(lambda t: t.permute(axes), param(xp, values))
    if values.ndim >= 2:
        np.testing.assert_array_equal(host(param(xp, values).transpose(0, -1)), np.swapaxes(values, 0, -1))
        np.testing.assert_array_equal(host(param(xp, values).T), values.T)


def test_permute_rejects_non_permutation(xp):
    with pytest.raises(ValueError, match=r"permute: axes \(0, 0\) are not a permutation"):
        param(xp, np.ones((2, 3))).permute(0, 0)


@given(data=st.data())
def test_getitem_basic(xp, data):
    values = data.draw(arrays(small_shapes))
    index = data.draw(hnp.basic_indices(values.shape, allow_newaxis=True))
    out = param(xp, values)[index]
    np.testing.assert_array_equal(host(out), values[index])
    if out.size:
        gradcheck(lambda t: t[index], param(xp, values))


@given(data=st.data())
def test_getitem_integer_array_with_repeats(xp, data):
    values = data.draw(arrays(small_shapes))
    n = values.shape[0]
    rows = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
    idx = np.asarray(rows)
    out = param(xp, values)[xp.asarray(idx)]
    np.testing.assert_array_equal(host(out), values[idx])
    gradcheck(lambda t: t[xp.asarray(idx)], param(xp, values))


def test_getitem_repeated_index_accumulates(xp):
    x = param(xp, [10.0, 20.0, 30.0])
    x[xp.asarray([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(host_grad := minicon.to_host(x.grad), [3.0, 0.0, 1.0])
    assert host_grad.dtype == np.float64


def test_getitem_tuple_of_arrays_boolean_mask_and_tensor_index(xp):
    values = np.arange(12.0).reshape(3, 4)
    x = param(xp, values)
    rows, cols = xp.asarray([0, 2, 2]), xp.asarray([1, 3, 3])
    np.testing.assert_array_equal(host(x[rows, cols]), values[[0, 2, 2], [1, 3, 3]])
    gradcheck(lambda t: t[rows, cols], param(xp, values))
    mask = xp.asarray(values % 3 == 0)
    np.testing.assert_array_equal(host(x[mask]), values[values % 3 == 0])
    gradcheck(lambda t: t[mask], param(xp, values))
    idx = Tensor(xp.asarray([2, 0]))
    np.testing.assert_array_equal(host(x[idx]), values[[2, 0]])
    gradcheck(lambda t: t[idx, 1:], param(xp, values))


def test_getitem_out_of_range_names_the_shape(xp):
    with pytest.raises(IndexError, match=r"getitem: .*tensor shape \(2,\)"):
        param(xp, [1.0, 2.0])[5]


@pytest.mark.parametrize("index, axis, value, size", [
    (np.array([0, 3]), 0, 3, 3),
    ([0, -4], 0, -4, 3),
    ((slice(None), np.array([4])), 1, 4, 4),
    ((Ellipsis, np.array([-5])), 1, -5, 4),
    ((None, np.array([7])), 0, 7, 3),
    ((np.array([True, False, True]), np.array([1, 9])), 1, 9, 4),
])
def test_getitem_index_arrays_out_of_range_raise_on_every_backend(xp, index, axis, value, size):
    # CuPy would wrap these around silently and return a wrong row
    index = tuple(xp.asarray(i) if isinstance(i, np.ndarray) else i for i in index) \
        if isinstance(index, tuple) else (xp.asarray(index) if isinstance(index, np.ndarray) else index)
    with pytest.raises(IndexError, match=rf"getitem: index {value} is out of bounds for axis "
                                         rf"{axis} with size {size} \(tensor shape \(3, 4\)\)"):
        param(xp, np.zeros((3, 4)))[index]


@given(data=st.data())
def test_row_gather_gradient_equals_add_at_in_any_number_of_chunks(xp, data):
    from minicon.ops import shape

    n = data.draw(st.integers(1, 6))
    values = np.random.default_rng(data.draw(st.integers(0, 99))).standard_normal((n, 3, 2))
    ids = np.asarray(data.draw(hnp.arrays(np.int64, st.sampled_from([(5,), (2, 4), (7, 1), (0,)]),
                                          elements=st.integers(-n, n - 1))))
    g = np.random.default_rng(1).standard_normal(ids.shape + (3, 2))
    expected = np.zeros_like(values)
    np.add.at(expected, ids, g)  # the sequential reference
    for budget in (shape._ONE_HOT_BYTES, 8):  # one chunk; one lookup per chunk
        old, shape._ONE_HOT_BYTES = shape._ONE_HOT_BYTES, budget
        try:
            x = param(xp, values)
            x[xp.asarray(ids)].backward(xp.asarray(g))
        finally:
            shape._ONE_HOT_BYTES = old
        np.testing.assert_allclose(minicon.to_host(x.grad), expected, rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_concatenate(xp, data):
    shape = data.draw(small_shapes)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = []
    for s in sizes:
        part_shape = list(shape)
        part_shape[axis] = s
        parts.append(data.draw(arrays(tuple(part_shape))))
    out = minicon.concatenate([param(xp, p) for p in parts], axis=axis)
    np.testing.assert_array_equal(host(out), np.concatenate(parts, axis=axis))
    gradcheck(lambda *ts: minicon.concatenate(ts, axis=axis), *[param(xp, p) for p in parts])


@given(data=st.data())
def test_stack(xp, data):
    shape = data.draw(small_shapes)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    count = data.draw(st.integers(1, 3))
    parts = [data.draw(arrays(shape)) for _ in range(count)]
    out = minicon.stack([param(xp, p) for p in parts], axis=axis)
    np.testing.assert_array_equal(host(out), np.stack(parts, axis=axis))
    gradcheck(lambda *ts: minicon.stack(ts, axis=axis), *[param(xp, p) for p in parts])


def test_concatenate_and_stack_errors_name_shapes(xp):
    a, b = param(xp, np.ones((2, 3))), param(xp, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"concatenate: shapes \(2, 3\), \(3, 2\) differ outside axis 0"):
        minicon.concatenate([a, b])
    with pytest.raises(ValueError, match=r"stack: all tensors need one shape, got \(2, 3\), \(3, 2\)"):
        minicon.stack([a, b])


def test_reshape_error_names_both_shapes(xp):
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into shape \(4,\)"):
        param(xp, np.ones((2, 3))).reshape(4)


def test_mixed_graph_of_shape_ops(xp):
    values = np.arange(24.0).reshape(2, 3, 4) / 10
    fn = lambda t: minicon.stack([t[0].T, t[1].T]).reshape(2, -1)[:, ::3] * t.sum()  # noqa: E731
    gradcheck(fn, param(xp, values))
