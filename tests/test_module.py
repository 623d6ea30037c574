"""The Module system: registration, traversal, modes, state_dict, dtype/backend moves, repr.

Uses small hand-written modules built from primitive ops, so these tests do
not depend on the layers.
"""

import numpy as np
import pytest

import minicon
from minicon import Tensor, backend
from minicon.nn import Module, Parameter


class Affine(Module):
    """``(x Wᵀ + b) · scale`` with a float and an integer buffer."""

    def __init__(self, d_in, d_out):
        super().__init__()
        rng = backend.host_rng()
        self.weight = Parameter(rng.standard_normal((d_out, d_in)).astype(np.float32))
        self.bias = Parameter(rng.standard_normal(d_out).astype(np.float32))
        self.register_buffer("scale", Tensor(np.ones(d_out, np.float32)))
        self.register_counter("steps")

    def forward(self, x):
        return (x @ self.weight.T + self.bias) * self.scale


class Net(Module):
    def __init__(self):
        super().__init__()
        self.first = Affine(3, 4)
        self.second = Affine(4, 2)
        self.label = "not registered"

    def forward(self, x):
        return self.second(self.first(x).relu())


def test_registration_by_assignment():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "first.weight", "first.bias", "second.weight", "second.bias"]
    assert [n for n, _ in net.named_buffers()] == ["first.scale", "first.steps", "second.scale", "second.steps"]
    assert [n for n, _ in net.named_children()] == ["first", "second"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Affine", "Affine"]
    assert list(net.children()) == [net.first, net.second]
    assert all(isinstance(p, Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert "label" not in dict(net.named_parameters()) and net.label == "not registered"


def test_reassignment_moves_between_registries_and_type_errors():
    layer = Affine(2, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = Tensor(np.ones((2, 2)))
    with pytest.raises(TypeError, match="buffer 'scale'"):
        layer.scale = np.ones(2)
    layer.scale = Tensor(np.full(2, 3.0, np.float32))
    assert float(layer.scale.data[0]) == 3.0
    del layer.weight
    with pytest.raises(AttributeError, match="no attribute 'weight'"):
        layer.weight


def test_assignment_before_init_and_bad_buffer_names_are_clear_errors():
    class Broken(Module):
        def __init__(self):
            self.weight = Parameter(np.ones(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()
    layer = Affine(2, 2)
    with pytest.raises(ValueError, match="without '.'"):
        layer.register_buffer("a.b", Tensor(np.ones(1)))
    with pytest.raises(ValueError, match="already a parameter"):
        layer.register_buffer("weight", Tensor(np.ones(1)))


def test_shared_parameter_is_listed_once():
    net = Net()
    net.third = net.first
    assert len(list(net.parameters())) == 4
    assert len(list(net.modules())) == 3


def test_train_eval_propagate_to_every_descendant():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad(xp):
    net = Net()
    x = Tensor(xp.asarray(np.random.default_rng(0).standard_normal((5, 3)), dtype=xp.float32))
    net(x).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not net(x).requires_grad


def test_state_dict_holds_host_copies_of_parameters_and_buffers(xp):
    net = Net()
    state = net.state_dict()
    assert list(state) == ["first.weight", "first.bias", "first.scale", "first.steps",
                           "second.weight", "second.bias", "second.scale", "second.steps"]
    assert all(type(v) is np.ndarray for v in state.values())
    assert state["first.steps"].dtype == np.int64 and state["first.weight"].dtype == np.float32
    state["first.weight"][...] = 0
    assert float(abs(net.first.weight.data).sum()) > 0


def test_state_dict_round_trip_through_npz_into_a_differently_seeded_model(xp, tmp_path):
    minicon.manual_seed(1)
    trained = Net()
    trained.first.scale.data[...] = 2.0
    trained.first.steps.data[...] = 7
    np.savez(tmp_path / "net.npz", **trained.state_dict())

    minicon.manual_seed(2)
    fresh = Net()
    x = Tensor(xp.asarray(np.random.default_rng(3).standard_normal((4, 3)), dtype=xp.float32))
    assert not np.allclose(fresh(x).numpy(), trained(x).numpy())
    with np.load(tmp_path / "net.npz", allow_pickle=False) as saved:
        result = fresh.load_state_dict(dict(saved))
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(fresh(x).numpy(), trained(x).numpy())
    assert int(fresh.first.steps.item()) == 7
    assert backend.array_module(fresh.first.weight.data) is xp


def test_load_state_dict_strict_errors_name_every_key_and_copy_nothing():
    net = Net()
    before = net.state_dict()
    state = net.state_dict()
    del state["second.bias"]
    state["extra.weight"] = np.zeros(3, np.float32)
    state["first.weight"] = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    message = str(err.value)
    assert "missing keys: second.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "first.weight: checkpoint (4, 4), model (4, 3)" in message
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("state, kind", [([1, 2], "list"), (None, "NoneType"), ("model", "str")])
def test_load_state_dict_of_a_non_mapping_is_a_type_error(state, kind):
    with pytest.raises(TypeError, match=f"expects a mapping of parameter names to arrays .*got {kind}$"):
        Net().load_state_dict(state)


def test_load_state_dict_non_strict_reports_keys_but_still_rejects_shapes():
    net = Net()
    partial = {k: v for k, v in Net().state_dict().items() if k.startswith("first.")}
    partial["head.weight"] = np.zeros(2, np.float32)
    result = net.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["second.weight", "second.bias", "second.scale", "second.steps"]
    assert result.unexpected_keys == ["head.weight"]
    np.testing.assert_array_equal(net.first.weight.numpy(), partial["first.weight"])
    with pytest.raises(ValueError, match=r"second.bias: checkpoint \(3,\), model \(2,\)"):
        net.load_state_dict({"second.bias": np.zeros(3, np.float32)}, strict=False)


def test_load_state_dict_casts_to_the_model_dtype():
    net = Net()
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in Net().state_dict().items()}
    net.load_state_dict(state)
    assert net.first.weight.dtype == np.float32
    np.testing.assert_allclose(net.first.weight.numpy(), state["first.weight"], rtol=1e-7)


def test_double_gives_float64_outputs_and_keeps_integer_buffers(xp):
    net = Net()
    weight = net.first.weight
    x = Tensor(xp.asarray(np.random.default_rng(0).standard_normal((2, 3))))  # float64
    net(Tensor(x.data.astype(xp.float32))).sum().backward()
    assert net.double() is net
    assert net.first.weight is weight, "to() must keep the Parameter objects (optimizers hold them)"
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net.first.scale.dtype == np.float64 and net.first.steps.dtype == np.int64
    assert net(x).dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.to("float64").first.bias.dtype == np.float64


def test_to_rejects_non_float_dtypes_and_unknown_devices():
    net = Net()
    with pytest.raises(ValueError, match="floating"):
        net.to("int32")
    with pytest.raises(ValueError, match="neither a backend"):
        net.to("gpu0")
    with pytest.raises(ValueError, match="device must be"):
        net.to(device="tpu")


def test_to_numpy_is_a_round_trip_on_the_host():
    net = Net()
    before = net.state_dict()
    net.to("numpy")
    assert all(type(p.data) is np.ndarray for p in net.parameters())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_to_cupy_and_back_moves_parameters_buffers_and_grads():
    ok, why = backend.cupy_available()
    if not ok:
        pytest.skip(f"CuPy backend unavailable: {why}")
    net = Net()
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    expected = net(Tensor(x)).numpy()
    net(Tensor(x)).sum().backward()
    before = net.state_dict()
    net.to("cupy")
    assert all(backend.is_cupy_array(t.data) for t in list(net.parameters()) + list(net.buffers())
               if t.ndim)
    assert all(type(t.data) is np.ndarray for t in net.buffers() if not t.ndim)  # counters
    assert all(backend.is_cupy_array(p.grad) for p in net.parameters())
    previous = backend.get_backend()
    try:
        minicon.set_backend("cupy")
        np.testing.assert_allclose(net(Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    finally:
        minicon.set_backend(previous)
    net.to("numpy")
    assert all(type(t.data) is np.ndarray for t in list(net.parameters()) + list(net.buffers()))
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_counters_are_host_int64_buffers_that_to_leaves_on_the_host(monkeypatch):
    net = Net()
    counter = net.first.steps
    assert type(counter.data) is np.ndarray and counter.shape == () and counter.dtype == np.int64
    assert "first.steps" in net.state_dict()
    moved, hosted = [], []
    monkeypatch.setattr(backend, "to_backend", lambda a, name=None: moved.append(a.shape) or a)
    monkeypatch.setattr(backend, "to_host", lambda a: hosted.append(a.shape) or a)
    net.to("cupy")  # recorded, not moved: no GPU needed
    assert sorted(moved) == sorted(t.shape for t in list(net.parameters()) + list(net.buffers())
                                   if t.ndim)
    assert hosted == [(), ()] and net.first.steps is counter  # a counter made on a GPU comes home
    net.load_state_dict({**net.state_dict(), "first.steps": np.array(7)})
    assert int(counter.data) == 7


def test_queue_pointer_and_batch_norm_counter_live_on_the_host(xp):
    from minicon.losses import MemoryQueue
    from minicon.nn import BatchNorm1d

    queue, bn = MemoryQueue(4, 6), BatchNorm1d(4, momentum=None)
    assert type(queue.pointer.data) is np.ndarray and type(bn.num_batches_tracked.data) is np.ndarray
    queue.enqueue(xp.ones((4, 4)))
    bn(Tensor(xp.asarray(np.random.default_rng(0).standard_normal((5, 4)))))
    assert queue.ptr == 4 and int(bn.num_batches_tracked.data) == 1
    assert backend.is_cupy_array(queue.buffer.data) == (minicon.get_backend() == "cupy")


def test_repr_is_nested_like_pytorch():
    class Leaf(Module):
        def extra_repr(self):
            return "3, 4"

    class Outer(Module):
        def __init__(self):
            super().__init__()
            self.inner = Net()
            self.leaf = Leaf()

    assert repr(Leaf()) == "Leaf(3, 4)"
    assert repr(Outer()) == (
        "Outer(\n"
        "  (inner): Net(\n"
        "    (first): Affine()\n"
        "    (second): Affine()\n"
        "  )\n"
        "  (leaf): Leaf(3, 4)\n"
        ")"
    )


def test_parameter_is_a_tensor_that_requires_grad():
    p = Parameter(np.ones(3, np.float32))
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\nTensor(")
    assert not Parameter(np.ones(2), requires_grad=False).requires_grad
    assert type(p * 2) is Tensor


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Plain does not define forward"):
        type("Plain", (Module,), {})()(1)
