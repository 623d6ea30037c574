"""Pooling over spatial windows: max, average and adaptive (global) average.

Max and average pooling loop over the K_h·K_w kernel offsets, each step one
vectorized op on a strided view of every window at once (see
:func:`minicon.functional.im2col.window_slice`); no loop over pixels, and no
fancy-index scatter in the backward, so both are exact on NumPy and CuPy.
"""

from __future__ import annotations

import math

from ..autograd import Function
from .im2col import check_nchw, output_size, pad_nhwc, pair, to_nchw, to_nhwc, window_slice


def _geometry(op: str, x, kernel_size, stride, padding):
    check_nchw(op, x)
    kernel = pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half the kernel size {kernel} "
            "(a window of padding alone has no input)"
        )
    return kernel, stride, padding, output_size(op, x.shape, kernel, stride, padding)


def _offsets(kernel: tuple):
    """Kernel offsets (i, j) in row-major order."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _crop(grad_pad, padding: tuple, hw: tuple):
    (ph, pw), (h, w) = padding, hw
    return to_nchw(grad_pad[:, ph : ph + h, pw : pw + w, :])


class MaxPool2d(Function):
    """``out[n, c, p, q] = max_{i,j} xpad[n, c, S·p + i, S·q + j]`` (padding is -inf).

    Gradient: within each window max is the identity of its largest element,
    so the whole upstream gradient goes to ONE element: the first maximum in
    row-major order of the window (as PyTorch; ties are a kink and this picks
    a valid subgradient). Backward walks the offsets in row-major order with
    ``r``, the gradient not yet handed out: offset (i, j) takes ``r`` where it
    equals the maximum, and ``r`` drops to 0 there, so a later tie gets
    nothing. Overlapping windows (S < K) add their shares.

    Shapes: x (N, C, H, W); out (N, C, H', W'), H' = (H + 2P - K_h)//S + 1.
    Saves: the padded input (a view of x when P = 0) and the output, to find
    the maxima again in backward instead of storing an index per window.

    References
    ----------
    CS231n, "Convolutional Networks: Pooling Layer".
    """

    @staticmethod
    def forward(ctx, x, *, kernel_size, stride=None, padding=0):
        xp = ctx.xp
        kernel, stride, padding, out_hw = _geometry("max_pool2d", x, kernel_size, stride, padding)
        xpad = pad_nhwc(xp, to_nhwc(x), padding, fill=-math.inf)
        windows = [xpad[window_slice(offset, out_hw, stride)] for offset in _offsets(kernel)]
        out = windows[0].copy() if len(windows) == 1 else xp.maximum(windows[0], windows[1])
        for window in windows[2:]:
            xp.maximum(out, window, out=out)
        ctx.save_for_backward(xpad, out)
        ctx.geometry = (kernel, stride, padding, out_hw, x.shape[2:])
        return to_nchw(out)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        xpad, out = ctx.saved
        kernel, stride, padding, out_hw, hw = ctx.geometry
        offsets = _offsets(kernel)
        overlap = stride[0] < kernel[0] or stride[1] < kernel[1]
        tiled = not overlap and stride == kernel and padding == (0, 0) and xpad.shape[1:3] == (
            out_hw[0] * kernel[0], out_hw[1] * kernel[1])
        # Exactly tiled windows write every pixel once: no zero fill needed.
        grad_pad = (xp.empty if tiled else xp.zeros)(xpad.shape, dtype=g.dtype)
        remaining = to_nhwc(g)
        hit = xp.empty(out.shape, dtype=bool)
        share = xp.empty(out.shape, dtype=g.dtype) if overlap else None
        for k, offset in enumerate(offsets):
            window = window_slice(offset, out_hw, stride)
            xp.equal(xpad[window], out, out=hit)
            # Disjoint windows write their share straight into place; overlapping ones add.
            target = share if overlap else grad_pad[window]
            xp.multiply(remaining, hit, out=target)
            if overlap:
                grad_pad[window] += share
            if k + 1 < len(offsets):
                remaining = remaining - target if k == 0 else xp.subtract(remaining, target, out=remaining)
        return _crop(grad_pad, padding, hw)


class AvgPool2d(Function):
    """``out[n, c, p, q] = (1 / (K_h K_w)) Σ_{i,j} xpad[n, c, S·p + i, S·q + j]``.

    Zero padding counts in the divisor (``count_include_pad=True``,
    PyTorch's default). Gradient: each window element receives
    ``g / (K_h K_w)``; overlapping windows add. Shapes as :class:`MaxPool2d`.
    Saves: only the geometry.
    """

    @staticmethod
    def forward(ctx, x, *, kernel_size, stride=None, padding=0):
        xp = ctx.xp
        kernel, stride, padding, out_hw = _geometry("avg_pool2d", x, kernel_size, stride, padding)
        xpad = pad_nhwc(xp, to_nhwc(x), padding)
        offsets = _offsets(kernel)
        out = xpad[window_slice(offsets[0], out_hw, stride)].copy()
        for offset in offsets[1:]:
            out += xpad[window_slice(offset, out_hw, stride)]
        out *= 1.0 / len(offsets)
        ctx.geometry = (xpad.shape, kernel, stride, padding, out_hw, x.shape[2:])
        return to_nchw(out)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        padded_shape, kernel, stride, padding, out_hw, hw = ctx.geometry
        offsets = _offsets(kernel)
        share = to_nhwc(g) * (1.0 / len(offsets))
        grad_pad = xp.zeros(padded_shape, dtype=g.dtype)
        for offset in offsets:
            grad_pad[window_slice(offset, out_hw, stride)] += share
        return _crop(grad_pad, padding, hw)


def _adaptive_bounds(size: int, out: int) -> list:
    """PyTorch's adaptive bins: bin i covers [floor(i·size/out), ceil((i+1)·size/out))."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    """Average over an ``out_h × out_w`` grid of bins covering the whole image.

    Bin (i, j) averages rows [⌊iH/out_h⌋, ⌈(i+1)H/out_h⌉) and the columns
    likewise (PyTorch's bins; they may overlap when out does not divide H).
    Output size 1 is global average pooling: ``out[n, c] = mean_{h,w} x``.
    Gradient: each element of bin (i, j) receives ``g[n, c, i, j] / |bin|``,
    summed over the bins that contain it. Shapes: x (N, C, H, W), out
    (N, C, out_h, out_w). Saves: the input shape and the bins. Loops over
    the out_h·out_w bins (not over pixels).
    """

    @staticmethod
    def forward(ctx, x, *, output_size):
        xp = ctx.xp
        check_nchw("adaptive_avg_pool2d", x)
        oh, ow = pair(output_size, "output_size", "adaptive_avg_pool2d", 1)
        ctx.shape = x.shape
        if (oh, ow) == (1, 1):
            ctx.bins = None
            return x.mean(axis=(2, 3), keepdims=True)
        ctx.bins = (_adaptive_bounds(x.shape[2], oh), _adaptive_bounds(x.shape[3], ow))
        out = xp.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for i, (h0, h1) in enumerate(ctx.bins[0]):
            for j, (w0, w1) in enumerate(ctx.bins[1]):
                out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        n, c, h, w = ctx.shape
        if ctx.bins is None:
            # Channels-last, like every other spatial op's gradient, so ReLU and batch
            # norm below multiply arrays of one layout.
            grad = xp.empty((n, h, w, c), dtype=g.dtype)
            grad[...] = to_nhwc(g) * (1.0 / (h * w))
            return to_nchw(grad)
        grad = xp.zeros(ctx.shape, dtype=g.dtype)
        for i, (h0, h1) in enumerate(ctx.bins[0]):
            for j, (w0, w1) in enumerate(ctx.bins[1]):
                grad[:, :, h0:h1, w0:w1] += g[:, :, i : i + 1, j : j + 1] / ((h1 - h0) * (w1 - w0))
        return grad


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling of an NCHW batch, as PyTorch's ``max_pool2d``.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
    kernel_size : int or (int, int)
        Window size K, >= 1.
    stride : int or (int, int), optional
        Step between windows (default: ``kernel_size``); need not divide H.
    padding : int or (int, int)
        Padding of -inf on each side, at most ``kernel_size // 2``.

    Returns
    -------
    Tensor, shape (N, C, H', W'), H' = (H + 2P - K) // S + 1 (W' likewise)

    Raises
    ------
    ValueError
        If x is not 4-D, the kernel is larger than the padded input, or
        kernel_size/stride/padding are invalid (padding > kernel_size // 2).

    Notes
    -----
    Where a window holds several equal maxima (common after ReLU: all-zero
    windows), the whole gradient goes to the first in row-major order.
    """
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling of an NCHW batch, as PyTorch's ``avg_pool2d``.

    Zero padding is counted in every window's divisor K_h·K_w
    (``count_include_pad=True``, PyTorch's default). Parameters, returns and
    errors as :func:`max_pool2d` (padding pads with zeros).
    """
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def adaptive_avg_pool2d(x, output_size=1):
    """Average over an ``output_size`` grid of bins, as PyTorch's ``adaptive_avg_pool2d``.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
    output_size : int or (int, int)
        Output (out_h, out_w); 1 is global average pooling.

    Returns
    -------
    Tensor, shape (N, C, out_h, out_w)

    Raises
    ------
    ValueError
        If x is not 4-D or output_size is not a positive int / pair.
    """
    return AdaptiveAvgPool2d.apply(x, output_size=output_size)
