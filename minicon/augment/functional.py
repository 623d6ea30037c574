"""Deterministic image operations on batches, the functional forms of the augmentations.

Every function takes a batch ``x`` of shape (N, C, H, W), floating (float32
in practice) with values in [0, 1], of either backend, and returns a new
batch on the same backend. Per-image parameters are a scalar (the same for
every image) or an array of shape (N,) (one per image), so one call
processes the whole batch with array operations, never a loop over images.

The definitions follow torchvision's ``transforms.v2.functional`` on float
tensors (itself modelled on PIL's ``ImageEnhance``): brightness multiplies,
contrast blends with the mean grey level, saturation blends with the
greyscale image, hue rotates the H channel of HSV; each result is clipped
to [0, 1]. Cropping, greyscale and blurring form convex combinations of
pixels and are not clipped (they stay linear): their outputs stay in the
input's range up to float32 rounding (about 1e-7).

Where minicon differs it says so: greyscale uses the exact ITU-R 601
weights 0.299/0.587/0.114 (PIL's ``convert("L")``; torchvision uses
0.2989), ``adjust_hue`` accepts any shift (it wraps modulo 1), and
``resized_crop`` resamples bilinearly without antialiasing.

References
----------
torchvision, ``torchvision.transforms.v2.functional`` (``_color.py``,
``_geometry.py``, ``_misc.py``), https://github.com/pytorch/vision.
PIL ``ImageEnhance`` (Brightness, Contrast, Color) and ``Image.convert("L")``.
ITU-R Recommendation BT.601, luma coefficients.
A. R. Smith, "Color Gamut Transform Pairs", SIGGRAPH 1978 (HSV).
"""

from __future__ import annotations

import math

from ..backend import array_module, is_cupy_array, to_host

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def hflip(x):
    """Mirror every image left to right.

    Parameters
    ----------
    x : array, shape (N, C, H, W)

    Returns
    -------
    array, shape (N, C, H, W)
        A reversed view of ``x`` (no copy): ``out[..., j] = x[..., W - 1 - j]``.
    """
    _check_batch(x, "hflip", channels=None)
    return x[..., ::-1]


def resized_crop(x, top, left, height, width, size):
    """Crop a box from each image and resize it bilinearly to ``size``.

    For output pixel ``i`` of a crop of length ``L`` resized to ``S`` the
    source coordinate is ``(i + 0.5) · L / S - 0.5`` (pixel centres aligned,
    as ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False, antialias=False)``), clamped to the crop, and the
    value is interpolated linearly along H then along W. Both steps are
    linear maps, so the batch is resampled as
    ``out[n] = Ry[n] @ x[n] @ Rx[n]ᵀ`` with per-image weight matrices
    Ry (H', H) and Rx (W', W), two nonzeros per row: two batched matmuls for
    the whole batch. Shrinking a crop by more than 2× aliases; CIFAR crops
    of a 32×32 image resized to 32×32 only enlarge.

    Parameters
    ----------
    x : array, shape (N, C, H, W), floating
    top, left : int or int array of shape (N,)
        Row and column of each box's top-left pixel.
    height, width : int or int array of shape (N,)
        Box size in pixels, at least 1.
    size : int or (int, int)
        Output (H', W'); an int means square.

    Returns
    -------
    array, shape (N, C, H', W'), dtype of ``x``

    Raises
    ------
    ValueError
        If a box leaves the image or is empty, or ``size`` is not positive.
    """
    _check_batch(x, "resized_crop", channels=None)
    xp = array_module(x)
    n, c, h, w = x.shape
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resized_crop: size must be positive, got {size}")
    boxes = [to_host(_batched(v, n, name, "resized_crop")).astype("int64").reshape(-1)
             for v, name in ((top, "top"), (left, "left"), (height, "height"), (width, "width"))]
    top, left, height, width = (b if b.size == n else b.repeat(n) for b in boxes)
    bad = (height < 1) | (width < 1) | (top < 0) | (left < 0) | (top + height > h) | (left + width > w)
    if bad.any():
        i = int(bad.argmax())
        raise ValueError(f"resized_crop: box {i} (top={top[i]}, left={left[i]}, height={height[i]}, "
                         f"width={width[i]}) is empty or leaves the {h}×{w} image")
    rows = _interpolation_matrix(xp, top, height, h, out_h, x.dtype)
    cols = _interpolation_matrix(xp, left, width, w, out_w, x.dtype)
    return _separable(x, rows, cols)


def adjust_brightness(x, brightness_factor):
    """``clip(factor · x, 0, 1)``: 0 gives black, 1 the original.

    Parameters
    ----------
    x : array, shape (N, 3, H, W), floating, in [0, 1]
    brightness_factor : float or array of shape (N,), >= 0

    Returns
    -------
    array, shape (N, 3, H, W)

    Raises
    ------
    ValueError
        For a negative factor or one of the wrong shape.
    """
    _check_batch(x, "adjust_brightness")
    f = _per_sample(brightness_factor, x, "brightness_factor", "adjust_brightness", low=0.0)
    return array_module(x).clip(f * x, 0.0, 1.0)


def adjust_contrast(x, contrast_factor):
    """Blend each image with its mean grey level: ``clip(f · x + (1 - f) · mean(gray(x)), 0, 1)``.

    0 gives a uniform grey image, 1 the original.

    Parameters
    ----------
    x : array, shape (N, 3, H, W), floating, in [0, 1]
    contrast_factor : float or array of shape (N,), >= 0

    Returns
    -------
    array, shape (N, 3, H, W)

    Raises
    ------
    ValueError
        For a negative factor or one of the wrong shape.
    """
    _check_batch(x, "adjust_contrast")
    f = _per_sample(contrast_factor, x, "contrast_factor", "adjust_contrast", low=0.0)
    # the mean of the luma is the luma of the channel means (both are linear)
    wr, wg, wb = GRAY_WEIGHTS
    m = x.mean(axis=(2, 3), keepdims=True)
    mean = wr * m[:, 0:1] + wg * m[:, 1:2] + wb * m[:, 2:3]
    return array_module(x).clip(f * x + (1 - f) * mean, 0.0, 1.0)


def adjust_saturation(x, saturation_factor):
    """Blend each image with its greyscale version: ``clip(f · x + (1 - f) · gray(x), 0, 1)``.

    0 gives greyscale, 1 the original, above 1 more saturated colours.

    Parameters
    ----------
    x : array, shape (N, 3, H, W), floating, in [0, 1]
    saturation_factor : float or array of shape (N,), >= 0

    Returns
    -------
    array, shape (N, 3, H, W)

    Raises
    ------
    ValueError
        For a negative factor or one of the wrong shape.
    """
    _check_batch(x, "adjust_saturation")
    f = _per_sample(saturation_factor, x, "saturation_factor", "adjust_saturation", low=0.0)
    return array_module(x).clip(f * x + (1 - f) * rgb_to_grayscale(x), 0.0, 1.0)


def adjust_hue(x, hue_factor):
    """Rotate the hue: RGB → HSV, ``h ← (h + hue_factor) mod 1``, HSV → RGB.

    Shifts 0 and 1 are the identity (up to float rounding); ±0.5 gives
    complementary colours. torchvision only accepts [-0.5, 0.5]; any real
    shift is accepted here since it wraps.

    Parameters
    ----------
    x : array, shape (N, 3, H, W), floating, in [0, 1]
    hue_factor : float or array of shape (N,)
        Shift in turns of the colour wheel.

    Returns
    -------
    array, shape (N, 3, H, W)

    Notes
    -----
    HSV as torchvision's ``_rgb_to_hsv`` (Smith 1978): with ``M = max``,
    ``m = min`` and chroma ``C = M - m`` over the channels, ``v = M``,
    ``s = C / M``, and the hue in sixths of a turn is ``(G - B) / C`` where R
    is the max, ``2 + (B - R) / C`` where G is, ``4 + (R - G) / C``
    otherwise (0 for grey pixels). Back to RGB by the closed form
    ``c_k = v - v·s·clip(min(t, 4 - t), 0, 1)``, ``t = (k + 6h) mod 6``,
    ``k = 5, 3, 1`` for R, G, B (the six-sector table in one line). Since
    ``v·s = C`` and only h changes, each channel is
    ``M - C·clip(min(t, 4 - t), 0, 1)``: s and v are never formed.
    """
    _check_batch(x, "adjust_hue")
    xp = array_module(x)
    f = _per_sample(hue_factor, x, "hue_factor", "adjust_hue")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    top = x.max(axis=1, keepdims=True)
    chroma = top - x.min(axis=1, keepdims=True)
    safe = xp.where(chroma == 0, 1.0, chroma)  # grey pixels: numerators are 0, so h = 0
    sixths = xp.where(r == top, (g - b) / safe,
                      xp.where(g == top, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    sixths = sixths + 6.0 * f
    channels = []
    for k in (5.0, 3.0, 1.0):
        t = 6.0 * _frac((k + sixths) / 6.0)
        channels.append(top - chroma * xp.clip(xp.minimum(t, 4.0 - t), 0.0, 1.0))
    return xp.clip(xp.concatenate(channels, axis=1), 0.0, 1.0)


def rgb_to_grayscale(x, num_output_channels: int = 1):
    """Luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).

    Parameters
    ----------
    x : array, shape (N, 3, H, W), floating
    num_output_channels : {1, 3}
        3 repeats the luma in every channel (an RGB image that looks grey).

    Returns
    -------
    array, shape (N, num_output_channels, H, W)

    Raises
    ------
    ValueError
        If ``num_output_channels`` is not 1 or 3.
    """
    _check_batch(x, "rgb_to_grayscale")
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}")
    wr, wg, wb = GRAY_WEIGHTS
    gray = wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3]
    return gray if num_output_channels == 1 else array_module(x).repeat(gray, 3, axis=1)


def gaussian_kernel_radius(sigma) -> int:
    """Kernel radius used when no size is given: ``ceil(3σ)``, at least 1.

    Three standard deviations hold 99.7 % of the Gaussian's mass, so the
    truncated kernel sums to within 0.3 % of 1 before it is renormalized.
    """
    return max(1, math.ceil(3.0 * float(sigma)))


def gaussian_blur(x, sigma, kernel_size=None):
    """Blur each image with a normalized Gaussian of standard deviation ``sigma`` pixels.

    The 2-D kernel is separable: the 1-D kernel
    ``g[d] ∝ exp(-d² / (2σ²))`` for ``d = -r..r``, normalized to sum 1, is
    applied along H then W, with reflect padding (as torchvision:
    ``a b c | b a``), so a constant image stays that constant. Each 1-D pass
    is a (H, H) matrix with the padding folded in, so the batch is blurred
    by two batched matmuls, as in :func:`resized_crop`.

    Parameters
    ----------
    x : array, shape (N, C, H, W), floating
    sigma : float or array of shape (N,), > 0
        Standard deviation in pixels, per image.
    kernel_size : int, optional
        Odd kernel width ``2r + 1`` for every image. Default: each image's
        own radius ``r = ceil(3σ)`` (:func:`gaussian_kernel_radius`), so the
        kernel grows with σ.

    Returns
    -------
    array, shape (N, C, H, W)

    Raises
    ------
    ValueError
        For a non-positive sigma or an even or non-positive ``kernel_size``.

    References
    ----------
    torchvision ``transforms.v2.functional.gaussian_blur``; SimCLR (Chen et
    al., 2020), appendix A: blur with σ ∈ [0.1, 2.0].
    """
    _check_batch(x, "gaussian_blur", channels=None)
    xp = array_module(x)
    n = x.shape[0]
    sigmas = to_host(_batched(sigma, n, "sigma", "gaussian_blur")).astype("float64").reshape(-1)
    if not (sigmas > 0).all():
        raise ValueError(f"gaussian_blur: sigma must be > 0, got {sigmas}")
    sigmas = sigmas if sigmas.size == n else sigmas.repeat(n)
    if kernel_size is None:
        radii = [gaussian_kernel_radius(s) for s in sigmas]
    elif isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1:
        radii = [kernel_size // 2] * n
    else:
        raise ValueError(f"gaussian_blur: kernel_size must be a positive odd int, got {kernel_size}")
    radius = max(radii)
    d = xp.arange(-radius, radius + 1, dtype=x.dtype)[None, :]
    s = xp.asarray(sigmas, dtype=x.dtype)[:, None]
    inside = xp.abs(d) <= xp.asarray(radii, dtype=x.dtype)[:, None]
    g = xp.exp(-(d * d) / (2 * s * s)) * inside  # (N, 2·radius + 1): zero beyond each image's r
    g = g / g.sum(axis=1, keepdims=True)
    rows = _blur_matrix(xp, g, x.shape[2], x.dtype)
    cols = rows if x.shape[3] == x.shape[2] else _blur_matrix(xp, g, x.shape[3], x.dtype)
    return _separable(x, rows, cols)


def normalize(x, mean, std):
    """``(x - mean[c]) / std[c]`` per channel.

    Parameters
    ----------
    x : array, shape (N, C, H, W), floating
    mean, std : sequence of C floats (or one float for all channels)
        ``std`` entries must be non-zero.

    Returns
    -------
    array, shape (N, C, H, W)

    Raises
    ------
    ValueError
        If ``mean``/``std`` do not have 1 or C entries, or a std is 0.
    """
    _check_batch(x, "normalize", channels=None)
    xp = array_module(x)
    c = x.shape[1]
    m = to_host(mean).astype("float64").reshape(-1)
    s = to_host(std).astype("float64").reshape(-1)
    if m.size not in (1, c) or s.size not in (1, c):
        raise ValueError(f"normalize: mean and std need 1 or {c} entries, got {m.size} and {s.size}")
    if (s == 0).any():
        raise ValueError(f"normalize: std must be non-zero, got {s}")
    m = xp.asarray(m, dtype=x.dtype).reshape(1, -1, 1, 1)
    s = xp.asarray(s, dtype=x.dtype).reshape(1, -1, 1, 1)
    return (x - m) / s


def _check_batch(x, op: str, channels=3) -> None:
    if getattr(x, "ndim", None) != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels else "(N, C, H, W)"
        raise ValueError(f"{op}: expected images of shape {want}, got {getattr(x, 'shape', type(x))}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: expected floating images in [0, 1], got dtype {x.dtype} "
                         "(convert uint8 batches with minicon.augment.ToFloat)")


def _batched(value, n: int, name: str, op: str):
    """``value`` as an array of shape () or (N,), else a ValueError naming it."""
    xp = array_module(value)
    value = value if hasattr(value, "shape") else xp.asarray(value)
    if value.shape not in ((), (n,)):
        raise ValueError(f"{op}: {name} must be a scalar or have shape (N,) = ({n},), "
                         f"got shape {tuple(value.shape)}")
    return value


def _per_sample(value, x, name: str, op: str, low=None):
    """A per-image parameter as an array broadcasting against (N, C, H, W), in x's dtype."""
    xp = array_module(x)
    value = _batched(value, x.shape[0], name, op)
    host = to_host(value)
    if not (abs(host) < math.inf).all() or (low is not None and (host < low).any()):
        raise ValueError(f"{op}: {name} must be finite{'' if low is None else f' and >= {low}'}, "
                         f"got {host}")
    value = value if is_cupy_array(x) else host
    return xp.asarray(value, dtype=x.dtype).reshape((-1, 1, 1, 1) if value.ndim else ())


def _frac(a):
    """``a mod 1`` as ``a - floor(a)`` (NumPy's float ``%`` is several times slower)."""
    return a - array_module(a).floor(a)


def _interpolation_matrix(xp, start, length, in_size: int, out_size: int, dtype):
    """Bilinear weights (N, out_size, in_size): output pixel i = Σ_j M[n, i, j] · input pixel j.

    ``start`` and ``length`` are host int arrays (N,) giving each image's
    crop; source position ``(i + 0.5) · length / out_size - 0.5`` (half-pixel
    centres, ``align_corners=False``), clamped to the crop.
    """
    start, length = xp.asarray(start)[:, None], xp.asarray(length)[:, None]
    pos = xp.maximum((xp.arange(out_size)[None, :] + 0.5) * (length / out_size) - 0.5, 0.0)
    i0 = xp.minimum(xp.floor(pos).astype("int64"), length - 1)
    i1 = xp.minimum(i0 + 1, length - 1)
    frac = (pos - i0).astype(dtype)[..., None]
    pixels = xp.arange(in_size)
    return (pixels == (start + i0)[..., None]) * (1 - frac) + (pixels == (start + i1)[..., None]) * frac


def _blur_matrix(xp, g, size: int, dtype):
    """(N, size, size) matrices applying the 1-D kernels ``g`` (N, K) with reflect padding."""
    taps = g.shape[1]
    padded = xp.asarray(_reflect_indices(size, taps // 2))
    # tap k of output i reads padded position i + k
    source = padded[xp.arange(taps)[:, None] + xp.arange(size)[None, :]]
    one_hot = (source[..., None] == xp.arange(size)).astype(dtype)  # (K, size, size)
    return (g @ one_hot.reshape(taps, size * size)).reshape(-1, size, size)


def _separable(x, rows, cols):
    """``rows[n] @ x[n, c] @ cols[n]ᵀ`` for every image n and channel c: (N, C, H', W')."""
    return rows[:, None] @ x @ cols.swapaxes(1, 2)[:, None]


def _reflect_indices(size: int, radius: int) -> list:
    """Source index of each of ``size + 2·radius`` reflect-padded positions (``c b | a b c | b a``)."""
    if size == 1:
        return [0] * (size + 2 * radius)
    period = 2 * (size - 1)
    indices = []
    for i in range(-radius, size + radius):
        m = abs(i) % period
        indices.append(m if m < size else period - m)
    return indices
