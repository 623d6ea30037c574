"""Layers: initialisation, state, train/eval behaviour, and agreement with the functional ops.

The functional ops themselves are tested against naive loops in
``tests/test_functional*.py``; here each layer must pass its own state and
settings to them correctly and keep its buffers right.
"""

import numpy as np
import pytest

import minicon
import minicon.functional as F
from minicon import Tensor, nn


def _randn(xp, *shape, seed=0, dtype=np.float32):
    return Tensor(xp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype)))


def _check_uniform(values, bound, what):
    """``values`` look like U(-bound, bound): inside it, reaching its edge, mean 0 and std bound/√3.

    Tolerances: the sample mean has standard error σ/√n and the sample std a
    relative standard error √((κ-1)/4n) with κ = 1.8 for a uniform; both are
    allowed 6 standard errors, so a correct init fails with odds below 1e-8.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n, sigma = values.size, bound / np.sqrt(3)
    assert np.abs(values).max() <= bound, f"{what}: a value outside ±{bound}"
    assert np.abs(values).max() >= bound * (1 - 20 / n), f"{what}: no value near the bound {bound}"
    assert abs(values.mean()) <= 6 * sigma / np.sqrt(n), f"{what}: mean {values.mean()} not 0"
    rel = abs(values.std() / sigma - 1)
    assert rel <= 6 * np.sqrt(0.8 / (4 * n)), f"{what}: std off by {rel:.2%}"


def test_kaiming_uniform_bound_is_pytorch_formula():
    # kaiming_uniform_(a=√5): gain √(2/(1+5)), std gain/√fan_in, bound √3·std
    for fan_in in (1, 27, 288, 2048):
        gain = np.sqrt(2.0 / (1 + 5))
        assert nn.kaiming_uniform_bound(fan_in) == pytest.approx(np.sqrt(3) * gain / np.sqrt(fan_in), rel=1e-12)


def test_linear_init_follows_pytorch_bounds():
    layer = nn.Linear(300, 1000)
    bound = 1 / np.sqrt(300)
    _check_uniform(layer.weight.numpy(), bound, "Linear.weight")
    _check_uniform(layer.bias.numpy(), bound, "Linear.bias")
    assert layer.weight.shape == (1000, 300) and layer.weight.dtype == np.float32


def test_conv2d_init_follows_pytorch_bounds():
    layer = nn.Conv2d(16, 512, 3)
    bound = 1 / np.sqrt(16 * 3 * 3)
    _check_uniform(layer.weight.numpy(), bound, "Conv2d.weight")
    _check_uniform(layer.bias.numpy(), bound, "Conv2d.bias")
    assert layer.weight.shape == (512, 16, 3, 3)


def test_init_is_reproducible_from_the_seed():
    minicon.manual_seed(5)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    minicon.manual_seed(5)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight.numpy(), a)


def test_linear_matches_x_wt_plus_b(xp):
    layer = nn.Linear(5, 3)
    x = _randn(xp, 4, 5)
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    no_bias = nn.Linear(5, 3, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    np.testing.assert_allclose(no_bias(x).numpy(), x.numpy() @ no_bias.weight.numpy().T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_size, stride, padding, bias", [(3, 1, 1, True), (5, 2, 2, False), (1, 3, 0, True)])
def test_conv2d_passes_its_settings_to_the_functional_op(xp, kernel_size, stride, padding, bias):
    layer = nn.Conv2d(3, 4, kernel_size, stride=stride, padding=padding, bias=bias)
    x = _randn(xp, 2, 3, 9, 9)
    out = layer(x)
    side = (9 + 2 * padding - kernel_size) // stride + 1
    assert out.shape == (2, 4, side, side)
    expected = F.conv2d(x, layer.weight, layer.bias, stride=stride, padding=padding)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


@pytest.mark.parametrize("cls, fn", [(nn.MaxPool2d, F.max_pool2d), (nn.AvgPool2d, F.avg_pool2d)])
def test_pools_default_stride_to_kernel_size_and_match_functional(xp, cls, fn):
    x = _randn(xp, 2, 3, 8, 8)
    assert cls(2)(x).shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(cls(2)(x).numpy(), fn(x, 2, stride=2).numpy())
    np.testing.assert_array_equal(cls(3, stride=2, padding=1)(x).numpy(), fn(x, 3, stride=2, padding=1).numpy())


def test_shape_layers(xp):
    x = _randn(xp, 2, 3, 4, 5)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x).numpy(), x.numpy().mean(axis=(2, 3), keepdims=True),
                               rtol=1e-6)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    assert nn.Identity()(x) is x
    with pytest.raises(ValueError, match="output_size=1"):
        nn.AdaptiveAvgPool2d(2)


def test_batchnorm2d_train_normalises_with_batch_stats_and_updates_running_stats(xp):
    bn = nn.BatchNorm2d(3, momentum=0.2)
    bn.weight.data[...] = xp.asarray([1.0, 2.0, 0.5], dtype=xp.float32)
    bn.bias.data[...] = xp.asarray([0.0, -1.0, 3.0], dtype=xp.float32)
    x = _randn(xp, 4, 3, 5, 5, dtype=np.float64)
    bn.double()
    out = bn(x).numpy()
    h = x.numpy()
    mean, var = h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3))
    expected = ((h - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
                * np.array([1.0, 2.0, 0.5])[:, None, None] + np.array([0.0, -1.0, 3.0])[:, None, None])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    m = h.size // 3
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * var * m / (m - 1), rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 1


def test_batchnorm_eval_uses_running_stats_and_changes_nothing(xp):
    bn = nn.BatchNorm1d(4)
    bn.running_mean.data[...] = xp.asarray([1.0, 0.0, -1.0, 2.0], dtype=xp.float32)
    bn.running_var.data[...] = xp.asarray([4.0, 1.0, 0.25, 9.0], dtype=xp.float32)
    before = bn.state_dict()
    x = _randn(xp, 6, 4)
    out = bn.eval()(x).numpy()
    expected = (x.numpy() - [1.0, 0.0, -1.0, 2.0]) / np.sqrt(np.array([4.0, 1.0, 0.25, 9.0]) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_batchnorm_momentum_none_is_the_cumulative_average(xp):
    bn = nn.BatchNorm1d(2, momentum=None).double()
    batches = [_randn(xp, 8, 2, seed=s, dtype=np.float64) for s in range(3)]
    for x in batches:
        bn(x)
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.numpy().mean(axis=0) for b in batches], axis=0),
                               rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean([b.numpy().var(axis=0, ddof=1) for b in batches],
                                                                axis=0), rtol=1e-10)


def test_batchnorm_state_names_and_shape_errors(xp):
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected N×C×H×W input with C=3, got shape \(2, 3\)"):
        bn(_randn(xp, 2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected N×C input"):
        nn.BatchNorm1d(3)(_randn(xp, 2, 4))
    assert [n for n, _ in nn.BatchNorm1d(3, affine=False).named_parameters()] == []


def test_dropout_train_and_eval(xp):
    drop = nn.Dropout(0.25)
    x = Tensor(xp.ones((200, 100), dtype=xp.float32))
    out = drop(x).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.02  # 20,000 draws: standard error 0.003
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(drop.eval()(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)


def test_sequential_indexing_iteration_and_names(xp):
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and seq[-1] is list(seq)[2]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(seq[:2]) == 2 and seq[:2][0] is seq[0]
    x = _randn(xp, 5, 3)
    np.testing.assert_array_equal(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    seq.append(nn.Identity())
    assert len(seq) == 4
    with pytest.raises(IndexError, match="out of range for length 4"):
        seq[7]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_bad_layer_arguments_name_the_argument():
    with pytest.raises(ValueError, match="Conv2d: kernel_size must be an integer >= 1, got 0"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="Conv2d: padding must be an integer >= 0"):
        nn.Conv2d(3, 4, 3, padding=-1)
    with pytest.raises(ValueError, match="Linear: in_features"):
        nn.Linear(2.5, 3)
    with pytest.raises(ValueError, match="MaxPool2d: stride"):
        nn.MaxPool2d(2, stride=0)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=1.5)


def test_layer_reprs_read_like_pytorch():
    assert repr(nn.Conv2d(3, 32, 3, padding=1, bias=False)) == \
        "Conv2d(3, 32, kernel_size=3, stride=1, padding=1, bias=False)"
    assert repr(nn.Linear(4, 2)) == "Linear(in_features=4, out_features=2, bias=True)"
    assert repr(nn.BatchNorm2d(8)) == "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.Sequential(nn.ReLU(), nn.Flatten())) == \
        "Sequential(\n  (0): ReLU()\n  (1): Flatten(start_dim=1)\n)"


def test_batchnorm_running_stats_match_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for running statistics")
    ours, theirs = nn.BatchNorm2d(3, momentum=None).double(), torch.nn.BatchNorm2d(3, momentum=None).double()
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((4, 3, 5, 5)) * (seed + 1)
        out = ours(Tensor(x)).numpy()
        ref = theirs(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-9)
