"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col + GEMM."""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from .im2col import (
    channel_sum, check_nchw, col2im_add, im2col, output_size, pad_nhwc, pair, to_nchw, to_nhwc,
)


class Conv2d(Function):
    """``out[n, f, p, q] = b[f] + Σ_{c,i,j} w[f, c, i, j] · xpad[n, c, S·p + i, S·q + j]``.

    Forward: gather every K_h×K_w×C window of the zero-padded input into a
    row of ``cols`` (im2col, one copy of a strided view, no loop over
    pixels), then one GEMM: ``out = cols @ Wmatᵀ (+ b)`` with ``Wmat`` the
    weight as an F×(K_h·K_w·C) matrix. The result, (N·H'·W')×F, is already
    channels-last and is returned as its NCHW view. On NumPy the batch is cut
    into chunks of about 8 MB of ``cols`` (one im2col + one GEMM each) so that
    ``cols`` is still in cache when the GEMM and, in backward, col2im read it
    (the convs of the ConvNet ran 1.1–1.6× faster than with one batch-wide
    im2col), and ``cols`` is never stored whole. On CuPy chunks are bounded
    at 256 MB, so memory stays bounded at any batch size.

    Gradients, with ``G`` the upstream gradient as an (N·H'·W')×F matrix
    (out is linear in each of cols, Wmat and b):

    * ``grad_b = Σ_rows G`` (b is added to every output pixel);
    * ``grad_Wmat = Gᵀ @ cols`` (GEMM, summed over chunks), reshaped back to
      F×C×K_h×K_w;
    * ``grad_cols = G @ Wmat`` (GEMM); each input pixel appears in every
      window that covers it, so ``grad_x`` is col2im of ``grad_cols``: the
      rows are ADDED back into their (overlapping) windows, dropping the
      entries that fall on the padding.

    Shapes: x (N, C, H, W); weight (F, C, K_h, K_w); bias (F,) or None;
    out (N, F, H', W') with H' = (H + 2P - K_h)//S + 1 (W' likewise).
    Saves: x and ``Wmat``; backward rebuilds each chunk's ``cols`` (a copy,
    cheap next to the GEMMs) instead of keeping K_h·K_w copies of the input.

    References
    ----------
    CS231n, "Convolutional Networks: Implementation as Matrix Multiplication";
    Chellapilla et al., IWFHR 2006.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride=1, padding=0):
        xp = ctx.xp
        check_nchw("conv2d", x)
        if weight.ndim != 4:
            raise ValueError(
                f"conv2d: weight must be 4-D (F, C, K_h, K_w), got shape {weight.shape} "
                f"(input shape {x.shape})"
            )
        if weight.shape[1] != x.shape[1]:
            raise ValueError(
                f"conv2d: input has {x.shape[1]} channels but weight expects {weight.shape[1]} "
                f"(input shape {x.shape}, weight shape {weight.shape})"
            )
        f = weight.shape[0]
        if bias is not None and bias.shape != (f,):
            raise ValueError(
                f"conv2d: bias must have shape ({f},) for weight shape {weight.shape}, "
                f"got {bias.shape}"
            )
        stride = pair(stride, "stride", "conv2d", 1)
        padding = pair(padding, "padding", "conv2d", 0)
        kernel = weight.shape[2:]
        out_hw = output_size("conv2d", x.shape, kernel, stride, padding)

        xt = to_nhwc(x)
        wmat = weight.transpose(0, 2, 3, 1).reshape(f, -1)
        out = xp.empty((x.shape[0], *out_hw, f), dtype=xp.result_type(x, weight))
        for chunk in _chunks(x, out_hw, wmat.shape[1]):
            cols = im2col(xp, pad_nhwc(xp, xt[chunk], padding), kernel, stride, out_hw)
            rows = out[chunk].reshape(-1, f)
            xp.matmul(cols, wmat.T, out=rows)
            if bias is not None:
                rows += bias

        ctx.save_for_backward(x, wmat)
        ctx.geometry = (kernel, stride, padding, out_hw)
        return to_nchw(out)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, wmat = ctx.saved
        kernel, stride, padding, out_hw = ctx.geometry
        f = g.shape[1]
        xt, grad_out = to_nhwc(x), to_nhwc(g)
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        grad_x = xp.zeros(xt.shape, dtype=g.dtype) if needs_x else None
        grad_wmat = xp.zeros(wmat.shape, dtype=g.dtype) if needs_w else None
        for chunk in _chunks(x, out_hw, wmat.shape[1]):
            rows = grad_out[chunk].reshape(-1, f)
            if needs_w:
                # im2col again rather than keep cols: a chunk's cols are rebuilt in cache,
                # and the whole batch's would take K_h·K_w times the input's memory.
                cols = im2col(xp, pad_nhwc(xp, xt[chunk], padding), kernel, stride, out_hw)
                grad_wmat += rows.T @ cols
            if needs_x:
                col2im_add(rows @ wmat, grad_x[chunk], kernel, stride, padding, out_hw)
        grad_w = None
        if needs_w:
            c = x.shape[1]
            grad_w = grad_wmat.reshape(f, *kernel, c).transpose(0, 3, 1, 2).copy()
        grad_b = channel_sum(xp, grad_out.reshape(-1, f)) if needs_b else None
        return (to_nchw(grad_x) if needs_x else None), grad_w, grad_b


def _chunks(x, out_hw: tuple, k: int):
    """Slices of the batch processed together, each at most ``_CHUNK_BYTES`` of im2col rows
    (or one image, if one image's rows are larger).

    The bound is per backend. On NumPy a chunk's cols stay in cache between im2col, GEMM
    and col2im. On CuPy chunks are larger, as one large GEMM fills the GPU best, but they
    are still bounded: a whole batch's cols for ResNet-18's first stage at batch 512 would
    be 1.2 GB, and backward makes a second buffer of that size.
    """
    n = x.shape[0]
    budget = _CHUNK_BYTES["cupy" if backend.is_cupy_array(x) else "numpy"]
    step = max(1, budget // (out_hw[0] * out_hw[1] * k * x.dtype.itemsize))
    return [slice(s, s + step) for s in range(0, n, step)]


# NumPy: 2 MB chunks ran ~10% faster on one core, but make 4× more GEMM calls, each a barrier
# for BLAS threads: erratic on a busy machine and a poor split across many cores.
# CuPy: 256 MB is ~67M float32 entries, a GEMM large enough to fill a GPU (not measured yet).
_CHUNK_BYTES = {"numpy": 8 << 20, "cupy": 256 << 20}


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution of an NCHW batch (cross-correlation, as PyTorch's ``conv2d``).

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
        Input images, float32 (or float64).
    weight : Tensor, shape (F, C, K_h, K_w)
        F filters; any kernel size.
    bias : Tensor of shape (F,), optional
        Added to every output pixel of each filter.
    stride : int or (int, int)
        Step between windows, >= 1; it need not divide the input evenly
        (trailing rows/columns no window reaches are skipped).
    padding : int or (int, int)
        Zero padding added to each side, >= 0.

    Returns
    -------
    Tensor, shape (N, F, H', W')
        H' = (H + 2P - K_h) // S + 1 and W' = (W + 2P - K_w) // S + 1.
        Its memory is channels-last (the NCHW view of an N×H'×W'×F array).

    Raises
    ------
    ValueError
        If x or weight is not 4-D, the channels differ, the bias shape is
        wrong (the message names the op and both shapes), the kernel is
        larger than the padded input, or stride/padding are invalid.

    See :class:`Conv2d` for the forward and backward formulas.
    """
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding)
