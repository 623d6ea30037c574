"""Sliding windows over images: argument checks, padding, im2col and col2im.

Every spatial op in :mod:`minicon.functional` works internally on a
channels-last ("NHWC") view of its NCHW input, ``x.transpose(0, 2, 3, 1)``:
there a window's C values for one pixel are contiguous, so gathering windows
copies whole channel vectors and per-channel statistics reduce over the
leading axis of an ``(N·H·W)×C`` matrix. Results are handed back as the NCHW
*view* of a channels-last array, so the public shapes are NCHW while
consecutive layers pass channels-last memory along without a transpose copy
(the first op that meets genuinely NCHW memory pays one copy).

Output size of a window op with kernel K, stride S and zero padding P along
an axis of length H (CS231n, "Convolutional Networks")::

    H' = (H + 2P - K) // S + 1

References
----------
K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional Neural
Networks for Document Processing", IWFHR 2006 (im2col + GEMM).
"""

from __future__ import annotations


def pair(value, name: str, op: str, minimum: int) -> tuple:
    """``value`` (an int or a pair of ints) as ``(for H, for W)``.

    Raises
    ------
    ValueError
        If it is not an int / pair of ints, or below ``minimum``; names ``op``
        and the argument.
    """
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return values


def check_nchw(op: str, x) -> None:
    """Raise ``ValueError`` naming ``op`` unless ``x`` is 4-D (N, C, H, W)."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")


def output_size(op: str, shape: tuple, kernel: tuple, stride: tuple, padding: tuple) -> tuple:
    """``(H', W')`` of a window op on an NCHW ``shape``: ``(H + 2P - K) // S + 1``.

    Raises
    ------
    ValueError
        If the kernel is larger than the padded input (names ``op``, the
        input shape and the kernel).
    """
    h, w = shape[2] + 2 * padding[0], shape[3] + 2 * padding[1]
    if kernel[0] > h or kernel[1] > w:
        raise ValueError(
            f"{op}: kernel {kernel} is larger than the padded input "
            f"({h}, {w}) (input shape {shape}, padding {padding})"
        )
    return (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1


def to_nhwc(x):
    """The channels-last view ``(N, H, W, C)`` of an NCHW array (no copy)."""
    return x.transpose(0, 2, 3, 1)


def to_nchw(x):
    """The NCHW view ``(N, C, H, W)`` of a channels-last array (no copy)."""
    return x.transpose(0, 3, 1, 2)


def pad_nhwc(xp, x, padding: tuple, fill: float = 0.0):
    """``x`` (N, H, W, C) padded by ``padding`` rows/columns of ``fill`` on each side.

    Returns ``x`` itself (a view, no copy) when the padding is zero.
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, h, w, c = x.shape
    out = xp.full((n, h + 2 * ph, w + 2 * pw, c), fill, dtype=x.dtype)
    out[:, ph : ph + h, pw : pw + w, :] = x
    return out


def window_slice(offset: tuple, out_hw: tuple, stride: tuple) -> tuple:
    """Index of kernel offset ``(i, j)`` of every window in a padded NHWC array.

    ``xpad[window_slice((i, j), ...)]`` is the ``(N, H', W', C)`` array whose
    pixel (p, q) is entry (i, j) of window (p, q): a strided view, so a loop
    over the K_h·K_w offsets touches every window at once.
    """
    (i, j), (ho, wo), (sh, sw) = offset, out_hw, stride
    return (slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))


def im2col(xp, xpad, kernel: tuple, stride: tuple, out_hw: tuple):
    """Gather every window of ``xpad`` (N, Hp, Wp, C) into one row each.

    Returns
    -------
    xp.ndarray, shape (N·H'·W', K_h·K_w·C)
        Row ``(n, p, q)`` holds window (p, q) of image n, ordered
        (kernel row, kernel column, channel). Built as ONE copy of a strided
        window view (no loop over pixels).
    """
    n, _, _, c = xpad.shape
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    sn, sy, sx, sc = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, (n, ho, wo, kh, kw, c), (sn, sy * sh, sx * sw, sy, sx, sc)
    )
    return windows.reshape(n * ho * wo, kh * kw * c)


def col2im_add(cols, out, kernel: tuple, stride: tuple, padding: tuple, out_hw: tuple) -> None:
    """The adjoint of :func:`im2col`: ADD each row's values back into its window of ``out``.

    Parameters
    ----------
    cols : xp.ndarray, shape (N·H'·W', K_h·K_w·C)
        Per-window values, ordered as :func:`im2col` makes them.
    out : xp.ndarray, shape (N, H, W, C)
        The UNPADDED image gradient, added to in place; window entries that
        fall on the padding are dropped (the padding is a constant).

    Notes
    -----
    One vectorized ``+=`` per kernel offset (i, j): within one offset every
    window touches a different pixel, so the strided slice has no repeated
    element and the sum is exact on NumPy and CuPy alike (unlike a fancy-
    index ``a[idx] += v``, which keeps only one of repeated writes).
    """
    n, h, w, c = out.shape
    (kh, kw), (ho, wo) = kernel, out_hw
    cols = cols.reshape(n, ho, wo, kh, kw, c)
    for i in range(kh):
        rows, grad_rows = _inside(i, padding[0], stride[0], ho, h)
        for j in range(kw):
            columns, grad_columns = _inside(j, padding[1], stride[1], wo, w)
            out[:, rows, columns, :] += cols[:, grad_rows, grad_columns, i, j, :]


def _inside(offset: int, pad: int, step: int, out_size: int, size: int) -> tuple:
    """For one kernel offset along one axis: (input slice, window slice) of windows whose
    entry at ``offset`` lands inside the unpadded input (row S·p + offset - P in [0, size))."""
    first = max(0, -(-(pad - offset) // step))
    last = min(out_size - 1, (size - 1 + pad - offset) // step)
    if last < first:
        return slice(0, 0), slice(0, 0)
    start = step * first + offset - pad
    return slice(start, start + step * (last - first) + 1, step), slice(first, last + 1)


def channel_sum(xp, rows):
    """Column sums of an (M, C) matrix, as the GEMV ``ones(M) @ rows``.

    BLAS reads the matrix once, row-contiguous and multithreaded; NumPy's
    ``rows.sum(axis=0)`` is about twice as slow on tall matrices.
    """
    return xp.ones(rows.shape[0], dtype=rows.dtype) @ rows
