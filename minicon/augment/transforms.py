"""Random augmentations on batches: draw per-image parameters, call the functional form.

Every transform is called as ``t(x, generator=None)`` on a batch ``x`` of
shape (N, 3, H, W), floating in [0, 1], of either backend (``ToFloat``
converts the uint8 batches of :mod:`minicon.data`). Parameters are drawn on
the host, one per image, from ``generator`` (a ``numpy.random.Generator``)
or else from :func:`minicon.backend.host_rng` (seeded by
``minicon.manual_seed``); so one seed gives the same augmentations on NumPy
and on CuPy. The batch is then processed by one call of the matching
function of :mod:`minicon.augment.functional`; a transform applied to only
some images (probability ``p``) runs on that subset and writes it back.

Defaults follow torchvision's ``transforms.v2``, except ``RandomGrayscale``
whose default p = 0.2 is the value of SimCLR and MoCo v2.

References
----------
torchvision, ``torchvision.transforms.v2`` (https://github.com/pytorch/vision).
C. Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (random
resized crop: area 8-100 %, aspect ratio 3/4-4/3).
T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations" (SimCLR), ICML 2020, appendix A.
"""

from __future__ import annotations

import math

from .. import backend
from ..backend import array_module
from . import functional as F


def _rng(generator):
    return backend.host_rng() if generator is None else generator


def _check_p(p) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return float(p)


def _apply_where(x, mask, fn):
    """``fn`` applied to the images where the host bool array ``mask`` is True; others kept."""
    if mask.all():
        return fn(x)
    if not mask.any():
        return x
    index = array_module(x).asarray(mask.nonzero()[0])
    out = x.copy()
    out[index] = fn(x[index])
    return out


class Transform:
    """Base class: ``__call__(x, generator=None)`` and a readable ``repr``."""

    def __call__(self, x, generator=None):
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class ToFloat(Transform):
    """uint8 images → floats in [0, 1] (``x / 255``) on the current backend.

    Input: array of shape (N, C, H, W), uint8 (divided by 255) or floating
    (assumed already in [0, 1], only cast), host or device. Output: the
    default dtype (float32) on :func:`minicon.backend.get_xp`; a uint8
    batch crosses to the GPU before the cast, 4× fewer bytes.

    Raises
    ------
    ValueError
        For another dtype or a shape that is not (N, C, H, W).
    """

    def __call__(self, x, generator=None):
        x = backend.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"ToFloat: expected images of shape (N, C, H, W), got {x.shape}")
        dtype = backend.default_dtype()
        if x.dtype.kind == "u" and x.dtype.itemsize == 1:
            return x.astype(dtype) / 255.0
        if x.dtype.kind == "f":
            return x.astype(dtype)
        raise ValueError(f"ToFloat: expected uint8 or floating images, got dtype {x.dtype}")


class Compose(Transform):
    """Apply ``transforms`` one after the other, passing ``generator`` to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, generator=None):
        rng = _rng(generator)
        for t in self.transforms:
            x = t(x, generator=rng)
        return x


class RandomApply(Transform):
    """Apply ``transforms`` (one, or a list run in order) to each image with probability ``p``."""

    def __init__(self, transforms, p: float = 0.5):
        self.transforms = Compose(transforms) if isinstance(transforms, (list, tuple)) else transforms
        self.p = _check_p(p)

    def __call__(self, x, generator=None):
        rng = _rng(generator)
        mask = rng.random(x.shape[0]) < self.p
        return _apply_where(x, mask, lambda sub: self.transforms(sub, generator=rng))


class RandomResizedCrop(Transform):
    """Crop a random box of random area and aspect ratio, resized to ``size`` (bilinear).

    Per image, up to 10 attempts draw an area fraction ``a ~ U(scale)`` and
    a ratio ``r = w / h`` log-uniform in ``ratio``; ``w = round(sqrt(a·H·W·r))``,
    ``h = round(sqrt(a·H·W / r))``. The first box that fits is placed
    uniformly at random; if none fits, the fallback is the centred largest
    box with ratio clamped into ``ratio`` (torchvision's rule).

    Parameters
    ----------
    size : int or (int, int)
        Output (H', W').
    scale : (float, float)
        Range of the box area as a fraction of the image, 0 < lo <= hi.
    ratio : (float, float)
        Range of width / height, 0 < lo <= hi.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < lo <= hi, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def get_params(self, n: int, height: int, width: int, rng):
        """Boxes for ``n`` images of ``height × width``: host int arrays (top, left, h, w), each (N,)."""
        area = height * width
        target = area * rng.uniform(self.scale[0], self.scale[1], size=(n, 11))
        aspect = math.e ** rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(n, 11))
        w = (target * aspect) ** 0.5
        h = (target / aspect) ** 0.5
        w, h = w.round().astype("int64"), h.round().astype("int64")
        # column 10 is the fallback, which always fits: it ends the search for every image
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w[:, 10], h[:, 10] = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            w[:, 10], h[:, 10] = round(height * self.ratio[1]), height
        else:
            w[:, 10], h[:, 10] = width, height
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits & (fits.cumsum(axis=1) == 1)
        h, w = (h * first).sum(axis=1), (w * first).sum(axis=1)
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        fallback = first[:, 10]
        top[fallback], left[fallback] = (height - h[fallback]) // 2, (width - w[fallback]) // 2
        return top, left, h, w

    def __call__(self, x, generator=None):
        n, _, height, width = x.shape
        top, left, h, w = self.get_params(n, height, width, _rng(generator))
        return F.resized_crop(x, top, left, h, w, self.size)


class RandomHorizontalFlip(Transform):
    """Mirror each image left to right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = _check_p(p)

    def __call__(self, x, generator=None):
        mask = _rng(generator).random(x.shape[0]) < self.p
        return _apply_where(x, mask, F.hflip)


class RandomGrayscale(Transform):
    """Replace each image by its ITU-R 601 luma in all 3 channels with probability ``p``."""

    def __init__(self, p: float = 0.2):
        self.p = _check_p(p)

    def __call__(self, x, generator=None):
        mask = _rng(generator).random(x.shape[0]) < self.p
        return _apply_where(x, mask, lambda sub: F.rgb_to_grayscale(sub, num_output_channels=3))


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, in a random order per image.

    Each strength is a float ``s`` (factor drawn uniformly from
    ``[max(0, 1 - s), 1 + s]``; for hue, a shift from ``[-s, s]``, s <= 0.5)
    or a ``(lo, hi)`` range. A strength of 0 skips that adjustment, so
    ``ColorJitter()`` is the identity. Every image gets its own factors and
    its own order of the four adjustments, as torchvision does per image
    (the order matters: each step clips to [0, 1]). The batch is processed
    as 4 steps × 4 adjustments, each on the images whose order puts that
    adjustment at that step, so the work equals 4 full-batch adjustments
    (plus gathering and scattering those images) and no image is looped over;
    the drawn factors and orders reach the device in two uploads.

    Raises
    ------
    ValueError
        For a negative strength, a hue strength above 0.5, or a range with
        lo > hi.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        self.brightness = self._range(brightness, "brightness", center=1.0, bound=(0.0, math.inf))
        self.contrast = self._range(contrast, "contrast", center=1.0, bound=(0.0, math.inf))
        self.saturation = self._range(saturation, "saturation", center=1.0, bound=(0.0, math.inf))
        self.hue = self._range(hue, "hue", center=0.0, bound=(-0.5, 0.5))

    @staticmethod
    def _range(value, name: str, center: float, bound: tuple):
        if isinstance(value, (int, float)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            value = (max(center - value, bound[0]), center + value)
        lo, hi = float(value[0]), float(value[1])
        if not bound[0] <= lo <= hi <= bound[1]:
            raise ValueError(f"{name} range must satisfy {bound[0]} <= lo <= hi <= {bound[1]}, "
                             f"got {value}")
        return None if lo == hi == center else (lo, hi)

    def __call__(self, x, generator=None):
        rng = _rng(generator)
        n = x.shape[0]
        adjust = [(fn, r) for fn, r in ((F.adjust_brightness, self.brightness),
                                        (F.adjust_contrast, self.contrast),
                                        (F.adjust_saturation, self.saturation),
                                        (F.adjust_hue, self.hue)) if r is not None]
        if not adjust:
            return x
        # one factor per image and adjustment (the same draws as one rng.uniform per adjustment)
        factors = rng.uniform([[lo] for _, (lo, _) in adjust], [[hi] for _, (_, hi) in adjust],
                              size=(len(adjust), n))
        order = rng.random((n, len(adjust))).argsort(axis=1)  # a random permutation per image
        # per step, the images sorted by the adjustment they get there, and their factors: all
        # the step's gathers become slices of one permuted batch, and everything drawn crosses
        # to the device in two uploads instead of two per (step, adjustment)
        groups = order.T.argsort(axis=1, kind="stable")  # (steps, n)
        kinds = order.T.copy()
        kinds.sort(axis=1)  # the adjustment of each sorted slot
        step_factors = factors[kinds, groups]
        bounds = [row.searchsorted(list(range(len(adjust) + 1))).tolist() for row in kinds]
        xp = array_module(x)
        groups, step_factors = xp.asarray(groups), xp.asarray(step_factors)
        out = x.copy()
        for step in range(len(adjust)):
            batch = out[groups[step]]
            for k, (fn, _) in enumerate(adjust):
                a, b = bounds[step][k], bounds[step][k + 1]
                if b > a:
                    batch[a:b] = fn(batch[a:b], step_factors[step, a:b])
            out[groups[step]] = batch
        return out


class GaussianBlur(Transform):
    """Blur each image with σ drawn uniformly from ``sigma`` (pixels).

    Parameters
    ----------
    kernel_size : int, optional
        Odd kernel width for every image. Default: each image's own
        ``2·ceil(3σ) + 1``, so the kernel grows with σ.
    sigma : float or (float, float)
        A fixed σ or the range it is drawn from, 0 < lo <= hi.
    """

    def __init__(self, kernel_size=None, sigma=(0.1, 2.0)):
        sigma = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must satisfy 0 < lo <= hi, got {sigma}")
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        self.kernel_size, self.sigma = kernel_size, sigma

    def __call__(self, x, generator=None):
        sigma = _rng(generator).uniform(self.sigma[0], self.sigma[1], size=x.shape[0])
        return F.gaussian_blur(x, sigma, self.kernel_size)


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel (see :func:`functional.normalize`)."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, x, generator=None):
        return F.normalize(x, self.mean, self.std)


class TwoViews(Transform):
    """Two independent draws of ``transform`` on the same batch: the positive pairs.

    Returns
    -------
    (view1, view2) : tuple of arrays
        Image ``i`` of ``view1`` and image ``i`` of ``view2`` are two
        augmentations of the same source image.
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, x, generator=None):
        rng = _rng(generator)
        return self.transform(x, generator=rng), self.transform(x, generator=rng)
