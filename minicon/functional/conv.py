"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col + GEMM."""

from __future__ import annotations

from ..autograd import Function
from .im2col import check_nchw, col2im, im2col, output_size, pad_nhwc, pair, to_nchw, to_nhwc


class Conv2d(Function):
    """``out[n, f, p, q] = b[f] + Σ_{c,i,j} w[f, c, i, j] · xpad[n, c, S·p + i, S·q + j]``.

    Forward: gather every K_h×K_w×C window of the zero-padded input into a
    row of ``cols`` (im2col, one copy of a strided view), then ONE GEMM:
    ``out = cols @ Wmatᵀ (+ b)`` with ``Wmat`` the weight as an F×(K_h·K_w·C)
    matrix. The result, (N·H'·W')×F, is already channels-last, and is returned
    as its NCHW view.

    Gradients, with ``G`` the upstream gradient as an (N·H'·W')×F matrix
    (out is linear in each of cols, Wmat and b):

    * ``grad_b = Σ_rows G`` (b is added to every output pixel);
    * ``grad_Wmat = Gᵀ @ cols`` (GEMM), reshaped back to F×C×K_h×K_w;
    * ``grad_cols = G @ Wmat`` (GEMM); each input pixel appears in every
      window that covers it, so ``grad_x`` is col2im of ``grad_cols``: the
      rows are ADDED back into their (overlapping) windows, then the padding
      is cropped.

    Shapes: x (N, C, H, W); weight (F, C, K_h, K_w); bias (F,) or None;
    out (N, F, H', W') with H' = (H + 2P - K_h)//S + 1 (W' likewise).
    Saves: ``cols`` (when the weight needs a gradient) and ``Wmat`` (when x
    does), so backward does no second im2col.

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
        n = x.shape[0]

        xpad = pad_nhwc(xp, to_nhwc(x), padding)
        cols = im2col(xp, xpad, kernel, stride, out_hw)
        wmat = weight.transpose(0, 2, 3, 1).reshape(f, -1)
        out = cols @ wmat.T
        if bias is not None:
            out += bias

        ctx.save_for_backward(
            cols if ctx.needs_input_grad[1] else None,
            wmat if ctx.needs_input_grad[0] else None,
        )
        ctx.geometry = (xpad.shape, kernel, stride, padding, out_hw, x.shape[2:])
        return to_nchw(out.reshape(n, *out_hw, f))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        cols, wmat = ctx.saved
        padded_shape, kernel, stride, padding, out_hw, (h, w) = ctx.geometry
        f = g.shape[1]
        grad_out = to_nhwc(g).reshape(-1, f)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_pad = col2im(xp, grad_out @ wmat, padded_shape, kernel, stride, out_hw)
            ph, pw = padding
            grad_x = to_nchw(grad_pad[:, ph : ph + h, pw : pw + w, :])
        if ctx.needs_input_grad[1]:
            c = padded_shape[3]
            grad_wmat = grad_out.T @ cols
            grad_w = grad_wmat.reshape(f, *kernel, c).transpose(0, 3, 1, 2).copy()
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(axis=0)
        return grad_x, grad_w, grad_b


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
