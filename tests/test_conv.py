"""conv2d: naive-loop reference, gradient checks, hand-worked values, layouts, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon
import minicon.functional as F
from minicon import Tensor, gradcheck, to_host

from .reference import conv2d_backward_naive, conv2d_naive


@st.composite
def conv_cases(draw, max_side=7):
    """(x, w, b, g, stride, padding): any kernel 1–5, stride 1–3, padding 0–2 that fits."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), max_side))
    w = draw(st.integers(max(1, kw - 2 * padding), max_side))
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((f, c, kh, kw))
    bias = rng.standard_normal(f)
    g = rng.standard_normal((n, f, ho, wo))
    return x, weight, bias, g, stride, padding


def _leaf(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


@given(case=conv_cases())
def test_conv2d_matches_naive_loops_forward_and_backward(xp, case):
    x, w, b, g, stride, padding = case
    tx, tw, tb = _leaf(xp, x), _leaf(xp, w), _leaf(xp, b)
    out = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
    np.testing.assert_allclose(to_host(out.data), conv2d_naive(x, w, b, stride, padding), atol=1e-12)
    out.backward(xp.asarray(g))
    grad_x, grad_w, grad_b = conv2d_backward_naive(x, w, g, stride, padding)
    np.testing.assert_allclose(to_host(tx.grad), grad_x, atol=1e-12)
    np.testing.assert_allclose(to_host(tw.grad), grad_w, atol=1e-12)
    np.testing.assert_allclose(to_host(tb.grad), grad_b, atol=1e-12)


@settings(max_examples=8)
@given(case=conv_cases(max_side=5))
def test_conv2d_gradcheck(xp, case):
    x, w, b, _, stride, padding = case
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), _leaf(xp, x), _leaf(xp, w), _leaf(xp, b))


def test_conv2d_without_bias_gradcheck(xp):
    rng = np.random.default_rng(1)
    x, w = _leaf(xp, rng.standard_normal((2, 2, 5, 4))), _leaf(xp, rng.standard_normal((3, 2, 2, 3)))
    gradcheck(lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 0)), x, w)


def test_conv2d_golden_stride_2(xp):
    # Non-overlapping 2×2 windows of 0..15 summed: worked by hand.
    x = _leaf(xp, np.arange(16.0).reshape(1, 1, 4, 4))
    w = _leaf(xp, np.ones((1, 1, 2, 2)))
    b = _leaf(xp, np.array([0.5]))
    out = F.conv2d(x, w, b, stride=2)
    np.testing.assert_array_equal(to_host(out.data), [[[[10.5, 18.5], [42.5, 50.5]]]])
    out.backward(xp.ones(out.shape))
    np.testing.assert_array_equal(to_host(x.grad), np.ones((1, 1, 4, 4)))
    np.testing.assert_array_equal(to_host(w.grad), [[[[20, 24], [36, 40]]]])
    np.testing.assert_array_equal(to_host(b.grad), [4])


def test_conv2d_golden_overlapping_windows_add_in_col2im(xp):
    # 2×2 ones over a 3×3 image, stride 1: the centre pixel lies in all 4 windows.
    x = _leaf(xp, np.ones((1, 1, 3, 3)))
    w = _leaf(xp, np.ones((1, 1, 2, 2)))
    out = F.conv2d(x, w)
    np.testing.assert_array_equal(to_host(out.data), np.full((1, 1, 2, 2), 4.0))
    out.backward(xp.ones(out.shape))
    np.testing.assert_array_equal(to_host(x.grad)[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_conv2d_golden_padding(xp):
    # One pixel, 3×3 kernel 0..8, padding 1: only the kernel's centre (4) meets the pixel.
    x = _leaf(xp, np.array([[[[3.0]]]]))
    w = _leaf(xp, np.arange(9.0).reshape(1, 1, 3, 3))
    out = F.conv2d(x, w, padding=1)
    assert to_host(out.data).tolist() == [[[[12.0]]]]
    out.backward(xp.ones(out.shape))
    assert to_host(x.grad).item() == 4.0
    np.testing.assert_array_equal(to_host(w.grad), [[[[0, 0, 0], [0, 3, 0], [0, 0, 0]]]])


def test_conv2d_uneven_stride_output_size_and_unreached_pixels(xp):
    # H' = (7 + 0 - 3) // 3 + 1 = 2: row/column 6 lies in no window, so its gradient is 0.
    rng = np.random.default_rng(2)
    x = _leaf(xp, rng.standard_normal((1, 2, 7, 7)))
    out = F.conv2d(x, Tensor(xp.asarray(rng.standard_normal((4, 2, 3, 3)))), stride=3)
    assert out.shape == (1, 4, 2, 2)
    out.sum().backward()
    grad = to_host(x.grad)
    assert np.all(grad[:, :, 6, :] == 0) and np.all(grad[:, :, :, 6] == 0)
    assert np.any(grad[:, :, 5, :] != 0)


def test_conv2d_non_contiguous_and_channels_last_inputs(xp):
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((2, 3, 6, 10))
    x = wide[..., ::2]  # every other column: a non-contiguous view
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    expected = conv2d_naive(x, w, b, 1, 1)
    for layout in (xp.asarray(wide)[..., ::2],
                   xp.ascontiguousarray(xp.asarray(x).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
        assert not layout.flags.c_contiguous
        tx = Tensor(layout, requires_grad=True)
        out = F.conv2d(tx, Tensor(xp.asarray(w)), Tensor(xp.asarray(b)), padding=1)
        np.testing.assert_allclose(to_host(out.data), expected, atol=1e-12)
        out.backward(xp.ones(out.shape))
        expected_grad = conv2d_backward_naive(x, w, np.ones(out.shape), 1, 1)[0]
        np.testing.assert_allclose(to_host(tx.grad), expected_grad, atol=1e-12)


def test_conv2d_equals_composition_of_primitive_ops(xp):
    # The same convolution from getitem / matmul / add: its autograd gradient must equal the fused one.
    rng = np.random.default_rng(4)
    x, w, b = (_leaf(xp, rng.standard_normal(s)) for s in [(2, 3, 5, 6), (4, 3, 2, 3), (4,)])
    stride = 2
    ho, wo = (5 - 2) // stride + 1, (6 - 3) // stride + 1
    out = b.reshape(1, 4, 1, 1)
    for i in range(2):
        for j in range(3):
            patch = x[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
            out = out + (w[:, :, i, j] @ patch.reshape(2, 3, ho * wo)).reshape(2, 4, ho, wo)
    g = xp.asarray(rng.standard_normal(out.shape))
    out.backward(g)
    composed = [to_host(t.grad) for t in (x, w, b)]
    fused_inputs = [_leaf(xp, to_host(t.data)) for t in (x, w, b)]
    fused = F.conv2d(*fused_inputs, stride=stride)
    np.testing.assert_allclose(to_host(fused.data), to_host(out.data), atol=1e-12)
    fused.backward(g)
    for t, expected in zip(fused_inputs, composed):
        np.testing.assert_allclose(to_host(t.grad), expected, atol=1e-12)


def test_conv2d_keeps_float32(xp):
    x = Tensor(xp.ones((2, 3, 8, 8), dtype=xp.float32), requires_grad=True)
    w = Tensor(xp.ones((4, 3, 3, 3), dtype=xp.float32), requires_grad=True)
    out = F.conv2d(x, w, Tensor(xp.zeros(4, dtype=xp.float32)), padding=1)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_conv2d_matches_torch_float32():
    torch = pytest.importorskip("torch", reason="PyTorch is the float32 reference")
    minicon.set_backend("numpy")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 9, 9), dtype=np.float32)
    w = rng.standard_normal((6, 8, 3, 3), dtype=np.float32)
    ours = F.conv2d(Tensor(x), Tensor(w), stride=2, padding=1).numpy()
    theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((3, 8, 8), (4, 3, 3, 3), {}, r"conv2d: expected a 4-D input .* \(3, 8, 8\)"),
        ((1, 3, 8, 8), (4, 3, 3), {}, r"conv2d: weight must be 4-D .*\(4, 3, 3\).*\(1, 3, 8, 8\)"),
        ((1, 3, 8, 8), (4, 2, 3, 3), {}, r"conv2d: input has 3 channels .*\(1, 3, 8, 8\).*\(4, 2, 3, 3\)"),
        ((1, 3, 2, 2), (4, 3, 5, 5), {"padding": 1}, r"conv2d: kernel \(5, 5\) is larger than the padded input \(4, 4\)"),
        ((1, 3, 8, 8), (4, 3, 3, 3), {"stride": 0}, r"conv2d: stride must be >= 1"),
        ((1, 3, 8, 8), (4, 3, 3, 3), {"padding": -1}, r"conv2d: padding must be >= 0"),
    ],
)
def test_conv2d_errors_name_op_and_shapes(xp, x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.conv2d(Tensor(xp.zeros(x_shape)), Tensor(xp.zeros(w_shape)), **kwargs)


def test_conv2d_bias_shape_error(xp):
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\) .* got \(3,\)"):
        F.conv2d(Tensor(xp.zeros((1, 3, 8, 8))), Tensor(xp.zeros((4, 3, 3, 3))), Tensor(xp.zeros(3)))


class _DeviceBatch:
    """Shape and dtype of a CuPy batch, for ``_chunks``, without a GPU."""

    __module__ = "cupy._core.core"

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)


@pytest.mark.parametrize("on_device", [False, True])
def test_im2col_chunks_are_bounded_by_bytes_on_both_backends(on_device):
    from minicon.functional.conv import _CHUNK_BYTES, _chunks

    # ResNet-18's first stage at batch 512: 32×32 outputs, 3·3·64 columns, float32: 1.2 GB
    def batch(n):
        return _DeviceBatch((n, 64, 32, 32), "float32") if on_device else np.empty((n, 1, 1, 1), np.float32)

    out_hw, k = (32, 32), 9 * 64
    chunks = _chunks(batch(512), out_hw, k)
    budget = _CHUNK_BYTES["cupy" if on_device else "numpy"]
    rows = [len(range(512)[c]) for c in chunks]
    assert sum(rows) == 512 and len(chunks) > 1
    assert max(rows) * out_hw[0] * out_hw[1] * k * 4 <= budget
    # an image larger than the budget still gets a chunk of its own
    assert [len(range(2)[c]) for c in _chunks(batch(2), (4096, 4096), k)] == [1, 1]


def test_conv2d_is_the_same_in_any_number_of_chunks(xp, monkeypatch):
    from minicon.functional import conv

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((5, 4, 6, 6))
    results = []
    for budget in (1 << 30, 3 * 36 * 27 * 8):  # one chunk; chunks of 3 images (3 + 2)
        monkeypatch.setitem(conv._CHUNK_BYTES, minicon.get_backend(), budget)
        assert len(conv._chunks(xp.asarray(x), (6, 6), 27)) == (1 if budget > 1 << 20 else 2)
        tx, tw, tb = _leaf(xp, x), _leaf(xp, w), _leaf(xp, b)
        out = F.conv2d(tx, tw, tb, padding=1)
        out.backward(xp.asarray(g))
        results.append([to_host(a) for a in (out.data, tx.grad, tw.grad, tb.grad)])
    for one, chunked in zip(*results):
        np.testing.assert_allclose(chunked, one, rtol=1e-12, atol=1e-12)
