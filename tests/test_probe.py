"""Linear probe and feature extraction: accuracy where the answer is known (separable → 1, random
labels → chance), the weight-decay sweep, and a frozen encoder left bit-for-bit untouched."""

import numpy as np
import pytest

import minicon
from minicon import Tensor, nn
from minicon.evaluate import extract_features, linear_probe, raw_pixels
from minicon.methods import SimCLR, build_method


def host(a):
    return minicon.to_host(a.data if isinstance(a, Tensor) else a)


def _separable(n, d=8, classes=4, seed=0):
    """Gaussian blobs around well-separated class means, plus an informative-free huge-scale feature."""
    rng = np.random.default_rng(seed)
    means = 4 * rng.standard_normal((classes, d))
    labels = rng.integers(classes, size=n)
    x = means[labels] + rng.standard_normal((n, d))
    x[:, 0] = 1e4 * rng.standard_normal(n)  # standardization must tame a feature of scale 1e4
    return x.astype(np.float32), labels


def test_linearly_separable_features_are_classified_perfectly(xp):
    x, y = _separable(600)
    result = linear_probe(xp.asarray(x[:400]), y[:400], xp.asarray(x[400:]), y[400:], epochs=20,
                          batch_size=128)
    assert result["top1"] >= 0.99 and result["train_top1"] >= 0.99
    assert [r["weight_decay"] for r in result["sweep"]] == [0.0, 1e-4, 1e-3, 1e-2, 1e-1]
    assert result["weight_decay"] in (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
    best = max(r["val_top1"] for r in result["sweep"])
    chosen = next(r for r in result["sweep"] if r["weight_decay"] == result["weight_decay"])
    assert chosen["val_top1"] == best
    assert (result["epochs"], result["batch_size"], result["val_fraction"]) == (20, 128, 0.2)


def test_random_labels_give_chance_accuracy(xp):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1400, 16)).astype(np.float32)
    y = rng.integers(4, size=1400)
    result = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], weight_decays=[1e-3], epochs=10,
                          batch_size=256)
    assert result["sweep"] == [] and result["weight_decay"] == 1e-3
    # 400 test points at chance 0.25: the binomial standard deviation is 0.022; allow over 4 of them
    assert abs(result["top1"] - 0.25) < 0.1


def test_weight_decay_is_chosen_when_it_helps_and_runs_repeat_with_the_same_rng():
    # 100 training points, 200 features of which one carries the label: unregularized fits the noise
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=400)
    x = rng.standard_normal((400, 200)).astype(np.float32)
    x[:, 0] += 1.5 * (2 * y - 1)
    kwargs = dict(epochs=30, batch_size=64)
    swept = linear_probe(x[:100], y[:100], x[100:], y[100:], weight_decays=[0.0, 0.3],
                         rng=np.random.default_rng(0), **kwargs)
    plain = linear_probe(x[:100], y[:100], x[100:], y[100:], weight_decays=[0.0],
                         rng=np.random.default_rng(0), **kwargs)
    assert swept["weight_decay"] == 0.3 and swept["top1"] > plain["top1"] + 0.03
    again = linear_probe(x[:100], y[:100], x[100:], y[100:], weight_decays=[0.0, 0.3],
                         rng=np.random.default_rng(0), **kwargs)
    assert again == swept


def test_probe_rejects_bad_arguments():
    x, y = _separable(40)
    for kwargs, match in [({"weight_decays": []}, "weight_decays"), ({"weight_decays": [-1.0]}, "weight_decays"),
                          ({"val_fraction": 1.0}, "val_fraction"), ({"epochs": 0}, "epochs"),
                          ({"lr": 0.0}, "lr")]:
        with pytest.raises(ValueError, match=match):
            linear_probe(x, y, x, y, **kwargs)
    with pytest.raises(ValueError, match="train_labels must be 40 non-negative integers"):
        linear_probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="differ in D"):
        linear_probe(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="test_features must be a non-empty floating"):
        linear_probe(x, y, x.astype(np.int64), y)


# ---- feature extraction ---------------------------------------------------------------------


def _images(xp, n=10, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32))


def test_extract_features_is_the_eval_mode_forward_in_any_batch_size(xp):
    encoder = nn.ConvNet(widths=(4, 8))
    encoder.train()
    for m in encoder.modules():  # non-trivial running statistics so eval mode differs from training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data += 0.5
            m.running_var.data *= 2.0
    images = _images(xp)
    features = extract_features(encoder, images, batch_size=3)
    assert features.shape == (10, 8) and features.dtype == np.float32
    encoder.eval()
    with minicon.no_grad():
        expected = host(encoder(Tensor(images)))
    np.testing.assert_allclose(host(features), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(host(extract_features(encoder, images, batch_size=100)), expected,
                               rtol=1e-6, atol=1e-7)


def test_extract_features_leaves_parameters_buffers_grads_and_modes_untouched(xp):
    method = SimCLR(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4))
    images = _images(xp, n=8)
    loss = method.training_step(((images, images + 0.1), None))  # real running stats and grads
    loss.backward()
    method.projection_head.eval()  # mixed modes must come back as they were
    modes = [m.training for m in method.modules()]
    state = method.state_dict()
    grads = {name: host(p.grad).copy() for name, p in method.named_parameters()}
    features = extract_features(method, images, batch_size=3)
    assert features.shape == (8, 8)  # encoder features, before the projection head
    assert [m.training for m in method.modules()] == modes
    for name, value in method.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
        assert value.dtype == state[name].dtype
    for name, p in method.named_parameters():
        np.testing.assert_array_equal(host(p.grad), grads[name], err_msg=name)


def test_extract_features_projected_gives_what_each_loss_compares(xp):
    images = _images(xp, n=6)
    simclr = SimCLR(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 3))
    moco = build_method("moco", nn.ConvNet(widths=(4, 8)), queue_size=8, split_bn=2)
    clip = build_method("clip", nn.ConvNet(widths=(4, 8)), class_names=["cat", "dog"], embed_dim=5)
    for method, reference, dim in (
            (simclr, lambda x: simclr.projection_head(simclr.encoder(x)), 3),
            (moco, lambda x: moco.projection_head(moco.encoder(x)), moco.projection_head.out_dim),
            (clip, lambda x: clip.image_projection(clip.image_encoder(x)), 5)):
        method.eval()
        with minicon.no_grad():
            expected = host(reference(Tensor(images)))
        z = extract_features(method, images, batch_size=4, projected=True)
        assert z.shape == (6, dim), type(method).__name__
        np.testing.assert_allclose(host(z), expected, rtol=1e-5, atol=1e-6, err_msg=type(method).__name__)
    with pytest.raises(ValueError, match="projected=True needs a method"):
        extract_features(nn.ConvNet(widths=(4,)), images, projected=True)


def test_extract_features_applies_the_transform_per_batch_and_checks_arguments(xp):
    encoder = nn.ConvNet(widths=(4,))
    raw = np.random.default_rng(0).integers(0, 256, size=(5, 3, 8, 8), dtype=np.uint8)
    seen = []

    def normalize(batch):
        seen.append(len(batch))
        return (batch.astype(np.float32) - 127.5) / 64

    features = extract_features(encoder, raw, batch_size=2, transform=normalize)
    assert seen == [2, 2, 1]
    expected = extract_features(encoder, normalize(raw))
    np.testing.assert_allclose(host(features), host(expected), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        extract_features(encoder, raw, batch_size=0)
    with pytest.raises(ValueError, match="floating N×C×H×W"):
        extract_features(SimCLR(encoder, nn.ProjectionHead(4, 4, 2)), raw)


def test_raw_pixels_flattens_each_image_to_float32(xp):
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    pixels = raw_pixels(images)
    assert pixels.shape == (2, 12) and pixels.dtype == np.float32
    np.testing.assert_array_equal(host(pixels)[1], np.arange(12, 24))
    np.testing.assert_array_equal(host(raw_pixels(images, transform=lambda a: a * 2.0))[0], np.arange(0, 24, 2))
