"""Encoders and projection head: shapes, sizes, state-dict names, a whole-model gradcheck, PyTorch parity."""

from collections import OrderedDict

import numpy as np
import pytest

import minicon
from minicon import Tensor, nn
from minicon.backend import to_host


def _images(xp, n, side, seed=0, dtype=np.float32):
    x = np.random.default_rng(seed).standard_normal((n, 3, side, side)).astype(dtype)
    return Tensor(xp.asarray(x))


def _count(model):
    return sum(p.size for p in model.parameters())


def test_convnet_default_architecture(xp):
    net = nn.ConvNet()
    assert net.feature_dim == 256
    # conv weights 3·32·9 + 32·64·9 + 64·128·9 + 128·256·9, plus BN γ and β per channel
    assert _count(net) == 9 * (3 * 32 + 32 * 64 + 64 * 128 + 128 * 256) + 2 * (32 + 64 + 128 + 256)
    out = net(_images(xp, 2, 32))
    assert out.shape == (2, 256) and out.dtype == np.float32
    assert [type(m).__name__ for m in net.features] == (["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"] * 3
                                                        + ["Conv2d", "BatchNorm2d", "ReLU"])
    assert list(net.state_dict())[:7] == [
        "features.0.weight", "features.1.weight", "features.1.bias", "features.1.running_mean",
        "features.1.running_var", "features.1.num_batches_tracked", "features.4.weight"]


@pytest.mark.parametrize("seed", range(3))
def test_convnet_pool_before_relu_equals_the_textbook_order(xp, seed):
    """ConvNet pools before its ReLU; conv-BN-ReLU-pool must give the same output and gradients."""
    minicon.manual_seed(seed)
    net = nn.ConvNet(widths=(3, 4, 5)).double()
    blocks = list(net.features)
    textbook = nn.Sequential(*blocks[0:2], nn.ReLU(), nn.MaxPool2d(2), *blocks[4:6], nn.ReLU(), nn.MaxPool2d(2),
                             *blocks[8:], net.pool, net.flatten)
    x = np.random.default_rng(seed).standard_normal((4, 3, 8, 8))
    x[0, :, :4, :4] = 0.0  # equal values in a window: ties after BN must route the gradient alike
    upstream = xp.asarray(np.random.default_rng(seed + 10).standard_normal((4, 5)))
    results = []
    for model in (net, textbook):
        net.zero_grad()
        xt = Tensor(xp.asarray(x), requires_grad=True)
        out = model(xt)
        out.backward(upstream)
        results.append([out.numpy(), to_host(xt.grad)]
                       + [to_host(p.grad) for p in net.parameters()])
    for ours, reference in zip(*results):
        np.testing.assert_array_equal(ours, reference)


def test_convnet_widths_and_input_errors(xp):
    net = nn.ConvNet(widths=(4, 8))
    assert net.feature_dim == 8 and net(_images(xp, 3, 6)).shape == (3, 8)
    with pytest.raises(ValueError, match=r"ConvNet: expected images N×3×H×W with H, W >= 2, got shape \(2, 1, 8, 8\)"):
        net(Tensor(xp.zeros((2, 1, 8, 8), dtype=xp.float32)))
    with pytest.raises(ValueError, match="widths"):
        nn.ConvNet(widths=())


def test_resnet18_cifar_variant(xp):
    net = nn.resnet18()
    assert net.feature_dim == 512
    # torchvision resnet18 has 11,689,512 parameters; minus fc (512·1000 + 1000),
    # minus the 7×7 stem (64·3·49), plus the 3×3 stem (64·3·9)
    assert _count(net) == 11_689_512 - 513_000 - 9_408 + 1_728
    assert net.conv1.kernel_size == 3 and net.conv1.stride == 1
    keys = net.state_dict()
    for key in ("conv1.weight", "bn1.running_var", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias"):
        assert key in keys, key
    assert "layer1.0.downsample.0.weight" not in keys  # stage 1 keeps shape: identity shortcut
    assert net(_images(xp, 2, 16)).shape == (2, 512)


def test_projection_head_layouts(xp):
    head = nn.ProjectionHead(8, 16)
    assert [type(m).__name__ for m in head.layers] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.layers[0].bias is None and head.layers[3].bias is not None and head.out_dim == 128
    h = Tensor(xp.asarray(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)))
    assert head(h).shape == (4, 128)
    plain = nn.ProjectionHead(8, 16, out_dim=3, num_layers=3, batch_norm=False)
    assert [type(m).__name__ for m in plain.layers] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert plain(h).shape == (4, 3)
    assert [type(m).__name__ for m in nn.ProjectionHead(8, 16, num_layers=1).layers] == ["Linear"]
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        nn.ProjectionHead(8, 16, num_layers=0)


def _call_with_parameters(model, names, tensors, *args):
    """``model(*args)`` with each named parameter replaced by the given tensor (as torch.func.functional_call).

    gradcheck differentiates with respect to its own float64 copies of the
    inputs, so the copies must be the tensors the forward pass reads.
    """
    modules = dict(model.named_modules())
    slots = [(modules[name.rpartition(".")[0]], name.rpartition(".")[2]) for name in names]
    originals = [module._parameters[attr] for module, attr in slots]
    for (module, attr), t in zip(slots, tensors):
        module._parameters[attr] = t
    try:
        return model(*args)
    finally:
        for (module, attr), p in zip(slots, originals):
            module._parameters[attr] = p


def test_convnet_and_head_pass_a_float64_gradcheck(xp):
    model = nn.Sequential(OrderedDict(encoder=nn.ConvNet(widths=(3, 4, 5)),
                                      projection_head=nn.ProjectionHead(5, 6, out_dim=3))).double()
    names, params = zip(*model.named_parameters())
    x = Tensor(xp.asarray(np.random.default_rng(1).standard_normal((4, 3, 8, 8))), requires_grad=True)
    # random directions only (max_elements=0): two forward passes per direction keep it fast
    assert minicon.gradcheck(lambda x, *ps: _call_with_parameters(model, names, ps, x), x, *params,
                             max_elements=0, directions=4, atol=1e-7, rtol=1e-5)


def _torch_convnet(torch, widths):
    """The textbook order conv-BN-ReLU-pool; minicon pools first, which is equal (checked here too)."""
    tnn = torch.nn
    layers, c = [], 3
    for i, w in enumerate(widths):
        layers += [tnn.Conv2d(c, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU()]
        if i < len(widths) - 1:
            layers.append(tnn.MaxPool2d(2))
        c = w

    class TorchConvNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*layers)
            self.pool = tnn.AdaptiveAvgPool2d(1)
            self.flatten = tnn.Flatten()

        def forward(self, x):
            return self.flatten(self.pool(self.features(x)))

    return TorchConvNet()


def _load_into_torch(torch, torch_model, state):
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


def test_convnet_and_head_match_pytorch_forward_and_gradients():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference implementation")
    widths = (4, 8, 8, 16)
    ours = nn.Sequential(nn.ConvNet(widths), nn.ProjectionHead(16, 12, out_dim=5)).double()
    tnn = torch.nn

    class TorchHead(tnn.Module):
        def __init__(self):
            super().__init__()
            self.layers = tnn.Sequential(tnn.Linear(16, 12, bias=False), tnn.BatchNorm1d(12), tnn.ReLU(),
                                         tnn.Linear(12, 5))

        def forward(self, h):
            return self.layers(h)

    theirs = tnn.Sequential(_torch_convnet(torch, widths), TorchHead()).double()
    _load_into_torch(torch, theirs, ours.state_dict())  # strict: the key names must agree exactly

    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32))
    upstream = np.random.default_rng(1).standard_normal((6, 5))
    for train in (True, False):
        ours.train(train), theirs.train(train)
        xt = torch.from_numpy(x).requires_grad_(True)
        out_t = theirs(xt)
        (out_t * torch.from_numpy(upstream)).sum().backward()
        xo = Tensor(x, requires_grad=True)
        ours.zero_grad()
        out_o = ours(xo)
        out_o.backward(upstream)
        np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-7, atol=1e-10)
        torch_grads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad, torch_grads[name], rtol=1e-7, atol=1e-10, err_msg=name)
        theirs.zero_grad()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-10, err_msg=key)


def test_resnet18_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference implementation")
    tnn = torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TorchResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            c = 64
            for stage, w in enumerate((64, 128, 256, 512), start=1):
                s = 1 if stage == 1 else 2
                setattr(self, f"layer{stage}", tnn.Sequential(TorchBlock(c, w, s), TorchBlock(w, w, 1)))
                c = w

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return x.mean(dim=(2, 3))

    # float64: at 8×8 input, layer4 is 1×1, so its batch norm sees 2 values per channel and
    # float32 rounding is amplified far beyond what would test the architecture
    ours, theirs = nn.resnet18().double(), TorchResNet18().double()
    _load_into_torch(torch, theirs, ours.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    xt = torch.from_numpy(x).requires_grad_(True)
    out_t = theirs(xt)
    out_t.sum().backward()
    xo = Tensor(x, requires_grad=True)
    out_o = ours(xo)
    out_o.sum().backward()
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-6, atol=1e-9)
