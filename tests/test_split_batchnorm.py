"""Split batch norm (MoCo's one-device Shuffling BN) and ``eval_mode``.

Training statistics must be those of each sub-batch ``x[s::S]`` (naive loop
here, the MoCo demo's PyTorch layer where torch is installed); the running
statistics move toward the mean of the sub-batch statistics; eval mode is
plain batch norm; conversion keeps every Parameter, buffer, key and order.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon
from minicon import Tensor, nn


def _split_reference(x, splits, weight, bias, eps):
    """Each sub-batch x[s::S] normalized with its own mean and biased variance (axes N, H, W)."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out, means, variances = np.empty_like(x), [], []
    for s in range(splits):
        part = x[s::splits]
        mean, var = part.mean(axis=axes, keepdims=True), part.var(axis=axes, keepdims=True)
        out[s::splits] = (part - mean) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)
        count = part.size // part.shape[1]
        means.append(mean.ravel())
        variances.append(var.ravel() * count / (count - 1))
    return out, np.mean(means, axis=0), np.mean(variances, axis=0)


@pytest.mark.parametrize("shape, splits", [((8, 3, 4, 5), 4), ((12, 5), 3), ((6, 2, 3, 3), 1)])
def test_training_statistics_are_per_sub_batch(xp, shape, splits):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + rng.standard_normal(shape[1])[(None, slice(None)) + (None,) * (len(shape) - 2)]
    layer_cls = nn.SplitBatchNorm2d if len(shape) == 4 else nn.SplitBatchNorm1d
    layer = layer_cls(shape[1], splits, momentum=0.3).double()
    layer.weight.data[...] = xp.asarray(rng.uniform(0.5, 2, shape[1]))
    layer.bias.data[...] = xp.asarray(rng.standard_normal(shape[1]))
    weight, bias = minicon.to_host(layer.weight.data), minicon.to_host(layer.bias.data)
    out = layer(Tensor(xp.asarray(x)))
    expected, mean, var = _split_reference(x, splits, weight, bias, layer.eps)
    np.testing.assert_allclose(minicon.to_host(out.data), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(minicon.to_host(layer.running_mean.data), 0.3 * mean, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(minicon.to_host(layer.running_var.data), 0.7 + 0.3 * var, rtol=1e-10)
    assert int(layer.num_batches_tracked.data) == 1


def test_eval_mode_is_plain_batch_norm_with_running_statistics(xp):
    split, plain = nn.SplitBatchNorm2d(3, 2), nn.BatchNorm2d(3)
    rng = np.random.default_rng(1)
    for layer in (split, plain):
        layer.running_mean.data[...] = xp.asarray([0.5, -1.0, 2.0], dtype=np.float32)
        layer.running_var.data[...] = xp.asarray([1.5, 0.25, 4.0], dtype=np.float32)
        layer.eval()
    x = Tensor(xp.asarray(rng.standard_normal((3, 3, 2, 2)).astype(np.float32)))  # 3 is not a multiple of 2
    np.testing.assert_array_equal(minicon.to_host(split(x).data), minicon.to_host(plain(x).data))


def test_matches_the_moco_demo_split_batch_norm_in_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch reference of the MoCo demo's SplitBatchNorm")

    class DemoSplitBatchNorm(torch.nn.BatchNorm2d):  # colab/moco_cifar10_demo.ipynb
        def __init__(self, num_features, num_splits, **kw):
            super().__init__(num_features, **kw)
            self.num_splits = num_splits

        def forward(self, x):
            n, c, h, w = x.shape
            mean_split = self.running_mean.repeat(self.num_splits)
            var_split = self.running_var.repeat(self.num_splits)
            out = torch.nn.functional.batch_norm(
                x.view(-1, c * self.num_splits, h, w), mean_split, var_split,
                self.weight.repeat(self.num_splits), self.bias.repeat(self.num_splits),
                True, self.momentum, self.eps).view(n, c, h, w)
            self.running_mean.data.copy_(mean_split.view(self.num_splits, c).mean(dim=0))
            self.running_var.data.copy_(var_split.view(self.num_splits, c).mean(dim=0))
            return out

    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((16, 4, 3, 3)), rng.standard_normal((16, 4, 3, 3))
    ours, theirs = nn.SplitBatchNorm2d(4, 8).double(), DemoSplitBatchNorm(4, 8).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.uniform(0.5, 2, 4)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(4)))
    ours.weight.data[...] = theirs.weight.detach().numpy()
    ours.bias.data[...] = theirs.bias.detach().numpy()
    xt, tt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for _ in range(2):  # the second call starts from updated running statistics
        out, ref = ours(xt), theirs(tt)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, tt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-10)


@settings(max_examples=10)
@given(splits=st.integers(1, 3), per_split=st.integers(1, 3), channels=st.integers(1, 3),
       side=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_gradients_match_finite_differences(splits, per_split, channels, side, seed):
    if per_split * side * side < 2:  # batch norm needs two values per channel in each sub-batch
        per_split = 2
    rng = np.random.default_rng(seed)
    layer = nn.SplitBatchNorm2d(channels, splits).double()
    layer.weight.data[...] = rng.uniform(0.5, 2, channels)
    x = Tensor(rng.standard_normal((splits * per_split, channels, side, side)), requires_grad=True)

    def forward(x, weight, bias):  # read gradcheck's float64 copies of γ and β
        layer._parameters["weight"], layer._parameters["bias"] = weight, bias
        return layer(x)

    assert minicon.gradcheck(forward, x, layer.weight, layer.bias)


def test_convert_keeps_parameters_buffers_keys_and_order():
    minicon.manual_seed(0)
    encoder = nn.ConvNet(widths=(4, 8))
    head = nn.ProjectionHead(8, 8, 4)
    before_params = [id(p) for p in encoder.parameters()]
    before_keys, before_state = list(encoder.state_dict()), encoder.state_dict()
    order = [type(m).__name__ for m in encoder.features]
    assert nn.convert_split_batchnorm(encoder, 2) is encoder
    nn.convert_split_batchnorm(head, 2)
    assert [type(m).__name__ for m in encoder.features] == [n.replace("BatchNorm", "SplitBatchNorm") for n in order]
    assert isinstance(head.layers[1], nn.SplitBatchNorm1d) and head.layers[1].num_splits == 2
    assert [id(p) for p in encoder.parameters()] == before_params
    assert list(encoder.state_dict()) == before_keys
    for key, value in encoder.state_dict().items():
        np.testing.assert_array_equal(value, before_state[key])
    single = nn.convert_split_batchnorm(nn.BatchNorm1d(3), 4)
    assert isinstance(single, nn.SplitBatchNorm1d) and single.num_splits == 4


def test_bad_batch_sizes_and_splits_are_clear_errors():
    layer = nn.SplitBatchNorm2d(3, 4)
    with pytest.raises(ValueError, match=r"N a multiple of 4, got shape \(6, 3, 2, 2\)"):
        layer(Tensor(np.zeros((6, 3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="num_splits"):
        nn.SplitBatchNorm1d(3, 0)
    with pytest.raises(ValueError, match="num_splits"):
        nn.convert_split_batchnorm(nn.ConvNet(widths=(4,)), 0)


def test_eval_mode_restores_each_sub_module_and_survives_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Sequential(nn.Dropout(0.5)))
    model[1].eval()  # mixed modes: a frozen batch norm inside a model in training
    before = [m.training for m in model.modules()]
    with nn.eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError), nn.eval_mode(model):
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before
