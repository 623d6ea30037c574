"""Pooling: naive-loop reference, gradient checks, ties, hand-worked values, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon.functional as F
from minicon import Tensor, gradcheck, to_host

from .reference import adaptive_avg_pool2d_naive, avg_pool2d_naive, max_pool2d_naive
from .strategies import distinct


@st.composite
def pool_cases(draw, max_side=8, ties=False):
    """(x, g, kernel, stride, padding): kernel 1–5, stride 1–3, padding ≤ kernel // 2, fitting."""
    kernel = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, min(2, kernel // 2)))
    h = draw(st.integers(max(1, kernel - 2 * padding), max_side))
    w = draw(st.integers(max(1, kernel - 2 * padding), max_side))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Values on a coarse grid make ties common (as zeros after ReLU are).
    x = rng.integers(-2, 3, (n, c, h, w)).astype(float) if ties else rng.standard_normal((n, c, h, w))
    ho, wo = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    return x, rng.standard_normal((n, c, ho, wo)), kernel, stride, padding


def _leaf(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


@given(case=pool_cases(ties=True))
def test_max_pool2d_matches_naive_loops_with_ties(xp, case):
    x, g, k, s, p = case
    tx = _leaf(xp, x)
    out = F.max_pool2d(tx, k, s, p)
    expected, expected_grad = max_pool2d_naive(x, k, s, p, g)
    np.testing.assert_array_equal(to_host(out.data), expected)
    out.backward(xp.asarray(g))
    np.testing.assert_allclose(to_host(tx.grad), expected_grad, atol=1e-12)


@given(case=pool_cases(ties=True))
def test_max_pool2d_and_relu_commute_gradient_included(xp, case):
    """relu(maxpool(x)) = maxpool(relu(x)), the order the ConvNet relies on.

    The grid values make exact zeros, all-negative windows and positive ties
    common; both orders must send each window's gradient to the same element.
    """
    x, g, k, s, p = case
    results = []
    for pool_first in (True, False):
        tx = _leaf(xp, x)
        out = F.relu(F.max_pool2d(tx, k, s, p)) if pool_first else F.max_pool2d(F.relu(tx), k, s, p)
        out.backward(xp.asarray(g))
        results.append((to_host(out.data), to_host(tx.grad)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@given(case=pool_cases())
def test_avg_pool2d_matches_naive_loops(xp, case):
    x, g, k, s, p = case
    tx = _leaf(xp, x)
    out = F.avg_pool2d(tx, k, s, p)
    expected, expected_grad = avg_pool2d_naive(x, k, s, p, g)
    np.testing.assert_allclose(to_host(out.data), expected, atol=1e-12)
    out.backward(xp.asarray(g))
    np.testing.assert_allclose(to_host(tx.grad), expected_grad, atol=1e-12)


@settings(max_examples=10)
@given(case=pool_cases(max_side=6))
def test_pooling_gradcheck(xp, case):
    x, _, k, s, p = case
    # Distinct values keep max pooling away from its ties (a kink).
    x = distinct(x, gap=1e-2)
    gradcheck(lambda x: F.max_pool2d(x, k, s, p), _leaf(xp, x))
    gradcheck(lambda x: F.avg_pool2d(x, k, s, p), _leaf(xp, x))


@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7)),
    out_h=st.integers(1, 4), out_w=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
)
def test_adaptive_avg_pool2d_matches_naive_bins(xp, shape, out_h, out_w, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    out = F.adaptive_avg_pool2d(Tensor(xp.asarray(x)), (out_h, out_w))
    np.testing.assert_allclose(to_host(out.data), adaptive_avg_pool2d_naive(x, out_h, out_w), atol=1e-12)


@pytest.mark.parametrize("output_size", [1, (2, 3)])
def test_adaptive_avg_pool2d_gradcheck(xp, output_size):
    x = _leaf(xp, np.random.default_rng(0).standard_normal((2, 3, 5, 4)))
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, output_size), x)


def test_global_average_pool_golden(xp):
    x = _leaf(xp, np.arange(8.0).reshape(1, 2, 2, 2))
    out = F.adaptive_avg_pool2d(x, 1)
    np.testing.assert_array_equal(to_host(out.data), [[[[1.5]], [[5.5]]]])
    out.backward(xp.asarray([[[[4.0]], [[8.0]]]]))
    np.testing.assert_array_equal(to_host(x.grad), [[[[1, 1], [1, 1]], [[2, 2], [2, 2]]]])


def test_max_pool2d_golden_and_tie_goes_to_first_in_row_major_order(xp):
    # Window 1 holds 5 twice (positions (0,1) and (1,0)): all of g goes to (0,1).
    x = _leaf(xp, np.array([[[[1.0, 5.0, 0.0, 0.0],
                              [5.0, 2.0, 0.0, 0.0],
                              [7.0, 1.0, 3.0, 9.0],
                              [0.0, 7.0, 9.0, 9.0]]]]))
    out = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(to_host(out.data), [[[[5, 0], [7, 9]]]])
    out.backward(xp.asarray([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(to_host(x.grad), [[[[0, 1, 2, 0],
                                                      [0, 0, 0, 0],
                                                      [3, 0, 0, 4],
                                                      [0, 0, 0, 0]]]])


def test_max_pool2d_overlapping_windows_add_gradients(xp):
    # Stride 1, kernel 2 on [[0, 1, 0], [0, 0, 0]]: both windows pick the 1.
    x = _leaf(xp, np.array([[[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]))
    out = F.max_pool2d(x, 2, stride=1)
    out.backward(xp.asarray([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(to_host(x.grad), [[[[0, 5, 0], [0, 0, 0]]]])


def test_avg_pool2d_counts_padding_in_divisor(xp):
    # count_include_pad=True: the corner window of a 2×2 ones image with padding 1 and
    # kernel 3 holds 4 ones and 5 zeros of padding, so it averages to 4/9.
    out = F.avg_pool2d(Tensor(xp.ones((1, 1, 2, 2))), 3, stride=1, padding=1)
    np.testing.assert_allclose(to_host(out.data), np.full((1, 1, 2, 2), 4 / 9))


def test_max_pool2d_pads_with_minus_infinity(xp):
    out = F.max_pool2d(Tensor(xp.full((1, 1, 2, 2), -5.0)), 3, stride=1, padding=1)
    np.testing.assert_array_equal(to_host(out.data), np.full((1, 1, 2, 2), -5.0))


def test_pooling_channels_last_input_and_float32(xp):
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 6)).astype(np.float32)
    channels_last = xp.ascontiguousarray(xp.asarray(x).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for fn in (F.max_pool2d, F.avg_pool2d):
        tx = Tensor(channels_last, requires_grad=True)
        out = fn(tx, 2)
        reference = (max_pool2d_naive if fn is F.max_pool2d else avg_pool2d_naive)(x.astype(float), 2, 2, 0)[0]
        np.testing.assert_allclose(to_host(out.data), reference, rtol=1e-6)
        out.sum().backward()
        assert out.dtype == np.float32 and tx.grad.dtype == np.float32


def test_max_pool2d_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for tie handling")
    x = np.random.default_rng(2).integers(0, 2, (2, 3, 9, 9)).astype(np.float64)
    g = np.random.default_rng(3).standard_normal((2, 3, 5, 5))
    tx = Tensor(x, requires_grad=True)
    F.max_pool2d(tx, 3, 2, 1).backward(g)
    rx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(rx, 3, 2, 1).backward(torch.tensor(g))
    np.testing.assert_allclose(tx.grad, rx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("fn", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize(
    "shape, args, message",
    [
        ((2, 8, 8), (2,), r"expected a 4-D input .*\(2, 8, 8\)"),
        ((1, 1, 2, 2), (3,), r"kernel \(3, 3\) is larger than the padded input \(2, 2\)"),
        ((1, 1, 8, 8), (3, 1, 2), r"padding \(2, 2\) must be at most half the kernel size"),
        ((1, 1, 8, 8), (0,), r"kernel_size must be >= 1"),
        ((1, 1, 8, 8), (2, 0), r"stride must be >= 1"),
    ],
)
def test_pooling_errors(xp, fn, shape, args, message):
    with pytest.raises(ValueError, match=message):
        fn(Tensor(xp.zeros(shape)), *args)


def test_adaptive_avg_pool2d_errors(xp):
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a 4-D input"):
        F.adaptive_avg_pool2d(Tensor(xp.zeros((2, 3))), 1)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1"):
        F.adaptive_avg_pool2d(Tensor(xp.zeros((1, 1, 4, 4))), 0)
