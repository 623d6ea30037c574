"""Augmentations: identities, value range, greyscale weights, blur, probabilities,
shapes and dtypes, references written as plain loops, and CuPy against NumPy."""

import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon
from minicon import backend
from minicon.augment import (
    ColorJitter,
    Compose,
    GaussianBlur,
    Normalize,
    RandomApply,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ToFloat,
    TwoViews,
    moco_v2_cifar,
    simclr_cifar,
)
from minicon.augment import functional as F

host = minicon.to_host


def images(n=6, h=8, w=8, seed=0):
    """Random float32 images in [0, 1] with exact 0s and 1s in them (the clipping edges)."""
    x = np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    return x


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- identities


def test_identity_transforms_return_the_input_exactly(xp):
    x = xp.asarray(images())
    np.testing.assert_array_equal(host(ColorJitter()(x, generator=rng())), host(x))
    full = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_array_equal(host(full(x, generator=rng())), host(x))
    np.testing.assert_array_equal(host(F.resized_crop(x, 0, 0, 8, 8, 8)), host(x))
    for fn in (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation):
        np.testing.assert_array_equal(host(fn(x, 1.0)), host(x))
    np.testing.assert_array_equal(host(F.hflip(F.hflip(x))), host(x))
    np.testing.assert_array_equal(host(F.hflip(x)), host(x)[..., ::-1])


@pytest.mark.parametrize("shift", [0.0, 1.0, -1.0, 3.0])
def test_whole_turns_of_hue_are_the_identity(xp, shift):
    x = xp.asarray(images())
    np.testing.assert_allclose(host(F.adjust_hue(x, shift)), host(x), atol=2e-6)


def test_hue_wraps_modulo_one_and_rotates_primaries(xp):
    x = xp.asarray(images())
    base = host(F.adjust_hue(x, 0.25))
    for same in (1.25, -0.75):
        np.testing.assert_allclose(host(F.adjust_hue(x, same)), base, atol=2e-6)
    red = xp.zeros((1, 3, 1, 1), dtype=xp.float32)
    red[0, 0] = 1.0
    np.testing.assert_allclose(host(F.adjust_hue(red, 1 / 3))[0, :, 0, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(host(F.adjust_hue(red, -1 / 3))[0, :, 0, 0], [0, 0, 1], atol=1e-6)


# ---------------------------------------------------------------- references


def test_adjust_hue_matches_colorsys(xp):
    x = images(n=3, h=5, w=5)
    x[0, :, 1, 1] = 0.5  # a grey pixel: hue undefined, must stay grey
    x[1, :, 1, 1] = [0.2, 0.7, 0.7]  # a tie for the max between G and B
    shifts = np.array([0.1, -0.3, 0.45])
    out = host(F.adjust_hue(xp.asarray(x), shifts))
    ref = np.empty_like(x)
    for n in range(3):
        for i in range(5):
            for j in range(5):
                h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].astype(float))
                ref[n, :, i, j] = colorsys.hsv_to_rgb((h + shifts[n]) % 1.0, s, v)
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_contrast_saturation_brightness_match_their_formulas(xp):
    x = images(n=3)
    f = np.array([0.0, 0.5, 1.7])
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    fb = f[:, None, None, None]
    mean = gray.mean(axis=(1, 2, 3), keepdims=True)
    cases = {
        F.adjust_brightness: np.clip(fb * x, 0, 1),
        F.adjust_contrast: np.clip(fb * x + (1 - fb) * mean, 0, 1),
        F.adjust_saturation: np.clip(fb * x + (1 - fb) * gray, 0, 1),
    }
    for fn, ref in cases.items():
        np.testing.assert_allclose(host(fn(xp.asarray(x), f)), ref, atol=1e-6, err_msg=fn.__name__)


def bilinear_loop(img, top, left, h, w, out_h, out_w):
    """Crop then resize one (C, H, W) image, pixel by pixel (align_corners=False)."""
    out = np.zeros((img.shape[0], out_h, out_w))
    for i in range(out_h):
        y = max((i + 0.5) * h / out_h - 0.5, 0.0)
        y0 = min(int(y), h - 1)
        y1, wy = min(y0 + 1, h - 1), y - min(int(y), h - 1)
        for j in range(out_w):
            xq = max((j + 0.5) * w / out_w - 0.5, 0.0)
            x0 = min(int(xq), w - 1)
            x1, wx = min(x0 + 1, w - 1), xq - x0
            p = img[:, top:top + h, left:left + w]
            out[:, i, j] = ((1 - wy) * ((1 - wx) * p[:, y0, x0] + wx * p[:, y0, x1])
                            + wy * ((1 - wx) * p[:, y1, x0] + wx * p[:, y1, x1]))
    return out


def test_resized_crop_matches_a_pixel_loop_per_box(xp):
    x = images(n=4, h=12, w=10)
    boxes = dict(top=[0, 3, 5, 11], left=[2, 0, 4, 9], height=[12, 4, 7, 1], width=[8, 10, 3, 1])
    out = host(F.resized_crop(xp.asarray(x), size=(9, 7), **{k: np.array(v) for k, v in boxes.items()}))
    assert out.shape == (4, 3, 9, 7) and out.dtype == np.float32
    for n in range(4):
        ref = bilinear_loop(x[n], *(boxes[k][n] for k in ("top", "left", "height", "width")), 9, 7)
        np.testing.assert_allclose(out[n], ref, atol=1e-6)


def test_resized_crop_matches_torch_interpolate():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for bilinear resizing")
    x = images(n=2, h=32, w=32)
    out = F.resized_crop(x, np.array([3, 10]), np.array([5, 0]), np.array([20, 13]),
                         np.array([11, 32]), 32)
    for n, (t, l, h, w) in enumerate([(3, 5, 20, 11), (10, 0, 13, 32)]):
        crop = torch.from_numpy(x[n:n + 1, :, t:t + h, l:l + w])
        ref = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bilinear",
                                              align_corners=False, antialias=False)
        np.testing.assert_allclose(out[n], ref[0].numpy(), atol=1e-6)


def test_gaussian_blur_matches_a_loop_with_reflect_padding(xp):
    x = images(n=2, h=9, w=7)
    sigma = np.array([0.7, 1.6])
    out = host(F.gaussian_blur(xp.asarray(x), sigma))
    for n in range(2):
        r = int(np.ceil(3 * sigma[n]))
        d = np.arange(-r, r + 1)
        g = np.exp(-d**2 / (2 * sigma[n] ** 2))
        g /= g.sum()
        padded = np.pad(x[n].astype(np.float64), ((0, 0), (r, r), (r, r)), mode="reflect")
        ref = np.zeros((3, 9, 7))
        for i in range(9):
            for j in range(7):
                ref[:, i, j] = np.einsum("a,b,cab->c", g, g, padded[:, i:i + 2 * r + 1, j:j + 2 * r + 1])
        np.testing.assert_allclose(out[n], ref, atol=1e-6)


# ---------------------------------------------------------------- greyscale and blur


def test_grayscale_uses_itu_r_601_weights_and_equal_channels(xp):
    primaries = xp.asarray(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1))
    np.testing.assert_allclose(host(F.rgb_to_grayscale(primaries)).ravel(), [0.299, 0.587, 0.114],
                               rtol=1e-6)
    out = host(RandomGrayscale(p=1.0)(xp.asarray(images()), generator=rng()))
    assert out.shape == (6, 3, 8, 8)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(out[:, 1], out[:, 2])
    assert F.rgb_to_grayscale(xp.asarray(images())).shape == (6, 1, 8, 8)


@pytest.mark.parametrize("kernel_size", [None, 3, 11])
def test_blur_of_a_constant_image_is_that_constant(xp, kernel_size):
    x = xp.full((3, 3, 7, 12), 0.3, dtype=xp.float32)
    out = host(F.gaussian_blur(x, np.array([0.1, 1.0, 4.0]), kernel_size))
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_blur_kernel_width_grows_with_sigma(xp):
    impulse = xp.zeros((4, 1, 41, 41), dtype=xp.float32)
    impulse[:, :, 20, 20] = 1.0
    sigmas = np.array([0.3, 0.8, 1.5, 3.0])
    out = host(F.gaussian_blur(impulse, sigmas))
    support = [(out[n, 0, 20] > 0).sum() for n in range(4)]  # nonzero taps on the centre row
    assert support == [2 * F.gaussian_kernel_radius(s) + 1 for s in sigmas]
    assert support == sorted(support) and len(set(support)) == 4
    d2 = (np.arange(41) - 20.0) ** 2
    spread = [(out[n, 0].sum(axis=0) * d2).sum() for n in range(4)]  # variance of the response
    assert all(a < b for a, b in zip(spread, spread[1:]))
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)  # kernels sum to 1


# ---------------------------------------------------------------- range, shapes, dtypes


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), strength=st.floats(0.0, 3.0))
def test_random_transforms_keep_values_in_unit_range(seed, strength):
    x = images(seed=seed % 1000)
    pipeline = Compose([
        RandomResizedCrop(8), RandomHorizontalFlip(),
        ColorJitter(strength, strength, strength, min(strength, 0.5)),
        RandomGrayscale(0.5), GaussianBlur(sigma=(0.1, 2.0)),
    ])
    out = pipeline(x, generator=rng(seed))
    # colour steps clip exactly; crop, greyscale and blur are convex combinations, in range
    # up to float32 rounding (a few units in the last place)
    assert out.min() >= -1e-6 and out.max() <= 1.0 + 1e-6
    assert ColorJitter(strength, strength, strength)(x, generator=rng(seed)).max() <= 1.0


def test_output_shapes_and_dtypes(xp):
    raw = (np.random.default_rng(0).random((5, 3, 32, 32)) * 255).astype(np.uint8)
    x = ToFloat()(raw)
    assert type(x).__module__.split(".")[0] == xp.__name__ and x.dtype == np.float32
    np.testing.assert_allclose(host(x), raw / 255.0, rtol=1e-6)
    g = rng()
    for t, shape in [
        (RandomResizedCrop((16, 24)), (5, 3, 16, 24)),
        (RandomHorizontalFlip(), (5, 3, 32, 32)),
        (ColorJitter(0.4, 0.4, 0.4, 0.1), (5, 3, 32, 32)),
        (RandomGrayscale(), (5, 3, 32, 32)),
        (GaussianBlur(5), (5, 3, 32, 32)),
        (Normalize((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), (5, 3, 32, 32)),
        (RandomApply([RandomHorizontalFlip(), ColorJitter(0.5)], p=0.5), (5, 3, 32, 32)),
    ]:
        out = t(x, generator=g)
        assert out.shape == shape and out.dtype == np.float32, repr(t)
        assert type(out).__module__.split(".")[0] == xp.__name__, repr(t)
    for preset in (simclr_cifar(), moco_v2_cifar(size=24)):
        v1, v2 = TwoViews(preset)(raw, generator=g)
        assert v1.shape == v2.shape == (5, 3, preset.transforms[1].size, preset.transforms[1].size)
        assert v1.dtype == np.float32 and 0.0 <= float(v1.min()) and float(v1.max()) <= 1.0
        assert not np.array_equal(host(v1), host(v2))


def test_normalize_subtracts_mean_and_divides_by_std(xp):
    x = xp.asarray(images())
    out = host(F.normalize(x, (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)))
    ref = (images() - np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)) / np.array([0.5, 0.25, 2.0]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, ref, atol=1e-6)


# ---------------------------------------------------------------- randomness


@pytest.mark.parametrize("make", [
    lambda p: RandomApply(Normalize((0.0,), (0.5,)), p=p),  # doubles the chosen images
    lambda p: RandomHorizontalFlip(p=p),
    lambda p: RandomGrayscale(p=p),
])
@pytest.mark.parametrize("p", [0.0, 0.2, 0.8, 1.0])
def test_apply_probability_within_binomial_tolerance(make, p):
    n = 2000
    x = images(n=n, h=2, w=3)
    out = make(p)(x, generator=rng(1))
    applied = (out != x).reshape(n, -1).any(axis=1).sum()
    tolerance = 5 * np.sqrt(n * p * (1 - p))  # 5 standard deviations of Binomial(n, p)
    assert abs(applied - n * p) <= tolerance, (applied, n * p, tolerance)


def test_random_resized_crop_boxes_obey_scale_and_ratio():
    t = RandomResizedCrop(32, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    top, left, h, w = t.get_params(5000, 32, 32, rng())
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    # rounding w and h to whole pixels moves area and ratio by at most about one pixel per side
    area = h * w / 1024
    assert area.min() >= 0.2 - 2 * 32 / 1024 and area.max() <= 0.6 + 2 * 32 / 1024
    assert (w / h).min() >= 0.5 * 0.9 and (w / h).max() <= 2.0 * 1.1
    assert len(set(top.tolist())) > 10 and len(set(area.round(2).tolist())) > 10


def test_random_resized_crop_falls_back_to_a_centre_crop():
    # a 2:1 box of the full area can never fit a square image: all 10 attempts fail
    top, left, h, w = RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(2.0, 3.0)).get_params(
        50, 32, 32, rng())
    assert (w == 32).all() and (h == 16).all() and (top == 8).all() and (left == 0).all()


def test_color_jitter_draws_a_random_order_per_image():
    # fixed factors, so only the order varies: brightening before or after removing colour differs
    x = np.broadcast_to(np.array([0.9, 0.2, 0.1], np.float32).reshape(1, 3, 1, 1), (400, 3, 1, 1)).copy()
    out = ColorJitter(brightness=(2.0, 2.0), saturation=(0.0, 0.0))(x, generator=rng())
    outcomes, counts = np.unique(out.reshape(400, 3).round(5), axis=0, return_counts=True)
    assert len(outcomes) == 2 and abs(counts[0] - 200) < 5 * 10
    gray_then_bright = np.clip(2 * (0.299 * 0.9 + 0.587 * 0.2 + 0.114 * 0.1), 0, 1)
    bright_then_gray = 0.299 * 1.0 + 0.587 * 0.4 + 0.114 * 0.2  # clipped at 1 after brightening
    np.testing.assert_allclose(sorted(outcomes[:, 0]), sorted([gray_then_bright, bright_then_gray]),
                               atol=1e-5)


def test_color_jitter_equals_a_per_image_loop_over_its_own_order_and_factors(xp):
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1)
    x = images(n=37, h=5, w=4)
    out = host(jitter(xp.asarray(x), generator=rng(3)))
    # the documented draws: one factor per image per adjustment, then a random order per image
    g = rng(3)
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    ranges = [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue]
    factors = [g.uniform(lo, hi, size=37) for lo, hi in ranges]
    order = g.random((37, 4)).argsort(axis=1)
    for i in range(37):
        one = x[i:i + 1]
        for k in order[i]:
            one = fns[k](one, factors[k][i:i + 1])
        np.testing.assert_allclose(out[i], one[0], rtol=1e-6, atol=1e-6)


def test_generator_and_global_seed_make_runs_reproducible():
    raw = (np.random.default_rng(0).random((8, 3, 32, 32)) * 255).astype(np.uint8)
    t = TwoViews(simclr_cifar())
    a, b = t(raw, generator=rng(7)), t(raw, generator=rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    minicon.manual_seed(3)
    c = t(raw)
    minicon.manual_seed(3)
    np.testing.assert_array_equal(c[0], t(raw)[0])
    assert not np.array_equal(a[0], t(raw, generator=rng(8))[0])


# ---------------------------------------------------------------- errors


def test_bad_input_raises_clear_errors():
    x = images()
    with pytest.raises(ValueError, match=r"adjust_hue: expected images of shape \(N, 3, H, W\), got \(6, 1, 8, 8\)"):
        F.adjust_hue(x[:, :1], 0.1)
    with pytest.raises(ValueError, match="uint8"):
        F.hflip((x * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="brightness_factor must be finite and >= 0"):
        F.adjust_brightness(x, -0.5)
    with pytest.raises(ValueError, match=r"contrast_factor must be a scalar or have shape \(N,\)"):
        F.adjust_contrast(x, np.ones(5))
    with pytest.raises(ValueError, match="box 1 .* leaves the 8×8 image"):
        F.resized_crop(x[:2], np.array([0, 4]), 0, np.array([8, 5]), 8, 8)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        F.gaussian_blur(x, 0.0)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int"):
        GaussianBlur(4)
    with pytest.raises(ValueError, match="p must be in"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="hue range"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="scale must satisfy"):
        RandomResizedCrop(32, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="std must be non-zero"):
        F.normalize(x, 0.5, (1.0, 0.0, 1.0))


# ---------------------------------------------------------------- CuPy against NumPy


def test_cupy_matches_numpy():
    ok, why = backend.cupy_available()
    if not ok:
        pytest.skip(f"CuPy backend unavailable: {why}")
    import cupy

    x = images(n=16, h=32, w=32)
    factors = np.linspace(0.2, 1.8, 16)
    cases = [
        lambda a: F.resized_crop(a, np.arange(16), np.arange(16)[::-1], 16, np.arange(1, 17), 32),
        F.hflip, lambda a: F.adjust_brightness(a, factors), lambda a: F.adjust_contrast(a, factors),
        lambda a: F.adjust_saturation(a, factors), lambda a: F.adjust_hue(a, factors - 1),
        F.rgb_to_grayscale, lambda a: F.gaussian_blur(a, factors),
        lambda a: F.normalize(a, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)),
    ]
    for i, fn in enumerate(cases):
        np.testing.assert_allclose(cupy.asnumpy(fn(cupy.asarray(x))), fn(x), atol=1e-5, err_msg=str(i))
    raw = (x * 255).astype(np.uint8)
    for preset in (simclr_cifar(), moco_v2_cifar()):
        on_host = preset(raw, generator=rng(4))
        previous = backend.get_backend()
        minicon.set_backend("cupy")
        try:
            on_gpu = preset(raw, generator=rng(4))
        finally:
            minicon.set_backend(previous)
        np.testing.assert_allclose(cupy.asnumpy(on_gpu), on_host, atol=1e-5)
