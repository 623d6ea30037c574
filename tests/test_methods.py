"""SimCLR and MoCo: the loss of a step against its manual forward, where gradients go, MoCo's
momentum update, queue order and checkpoint round trip, and ``build_method``.

Tiny encoders (ConvNet(widths=(4, 8)) on 8×8 images) keep every test well under a second.
"""

import numpy as np
import pytest

import minicon
from minicon import Tensor, nn
from minicon.backend import host_rng
from minicon.losses import info_nce, nt_xent
from minicon.losses.normalize import l2_normalize
from minicon.gradcheck import GradcheckError, gradcheck
from minicon.losses import supcon
from minicon.methods import (
    BYOL, CLIP, METHODS, MoCo, SimCLR, SimSiam, SupConMethod, build_method, momentum_copy, momentum_update_,
)
from minicon.optim import SGD, Adam


def host(a):
    return minicon.to_host(a.data if isinstance(a, Tensor) else a)


def _views(xp, n=8, seed=0, side=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, side, side)).astype(np.float32)
    return xp.asarray(x), xp.asarray(x + 0.3 * rng.standard_normal(x.shape).astype(np.float32))


def _moco(split_bn=1, **kwargs):
    return MoCo(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4, batch_norm=False), queue_size=12,
                split_bn=split_bn, **kwargs)


def _assert_finite_grads(params, what):
    for name, p in params:
        assert p.grad is not None, f"{what}: no gradient reached {name}"
        assert np.isfinite(host(p.grad)).all() and np.abs(host(p.grad)).sum() > 0, f"{what}: {name}"


# ---- SimCLR ---------------------------------------------------------------------------------


def test_simclr_step_is_nt_xent_of_the_manual_forward_and_reaches_every_parameter(xp):
    method = SimCLR(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4), temperature=0.3)
    v1, v2 = _views(xp)
    loss = method.training_step(((v1, v2), None))
    assert loss.shape == () and np.isfinite(loss.item())
    loss.backward()
    _assert_finite_grads(method.named_parameters(), "SimCLR")
    z = method.projection_head(method.encoder(Tensor(xp.concatenate([v1, v2]))))
    expected = nt_xent(z[:8], z[8:], 0.3)
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)


def test_simclr_batch_norm_sees_both_views_as_one_batch(xp):
    method = SimCLR(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4))
    v1, v2 = _views(xp)
    first_conv, first_bn = method.encoder.features[0], method.encoder.features[1]
    method.training_step(((v1, v2), None))
    with minicon.no_grad():
        pre_bn = host(first_conv(Tensor(xp.concatenate([v1, v2]))).data)
    np.testing.assert_allclose(host(first_bn.running_mean.data), 0.1 * pre_bn.mean(axis=(0, 2, 3)),
                               rtol=1e-4, atol=1e-7)


def test_simclr_loss_decreases_over_a_few_steps(xp):
    minicon.manual_seed(0)
    method = SimCLR(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4))
    optimizer = Adam(method.parameters(), lr=1e-2)
    data = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    losses = []
    for _ in range(15):
        noise = host_rng().standard_normal((2,) + data.shape).astype(np.float32)
        views = (xp.asarray(data + 0.2 * noise[0]), xp.asarray(data + 0.2 * noise[1]))
        loss = method.training_step((views, None))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses


def test_simclr_rejects_malformed_batches():
    method = SimCLR(nn.ConvNet(widths=(4,)), nn.ProjectionHead(4, 4, 2))
    x = np.zeros((4, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"batch must be \(\(view1, view2\), labels\)"):
        method.training_step((x, None))
    with pytest.raises(ValueError, match=r"same shape, got \(4, 3, 8, 8\) and \(2, 3, 8, 8\)"):
        method.training_step(((x, x[:2]), None))
    with pytest.raises(ValueError, match="floating N×C×H×W"):
        method.training_step(((x.astype(np.uint8), x), None))
    with pytest.raises(ValueError, match="temperature"):
        SimCLR(nn.ConvNet(widths=(4,)), nn.ProjectionHead(4, 4, 2), temperature=0)


# ---- MoCo: key networks ---------------------------------------------------------------------


def _key_state(method):
    state = method.state_dict()
    return {name: state[f"key_{name}"] for name in state if name.startswith(("encoder.", "projection_head."))}


def test_moco_key_networks_start_equal_and_are_not_parameters():
    method = _moco()
    state = method.state_dict()
    for name, value in _key_state(method).items():
        np.testing.assert_array_equal(value, state[name])
    names = [name for name, _ in method.named_parameters()]
    assert names and all(n.startswith(("encoder.", "projection_head.")) for n in names)
    assert not list(method.key_encoder.parameters()) and not list(method.key_projection_head.parameters())
    SGD(method.parameters(), lr=0.1)  # the optimizer accepts exactly these: all trainable


@pytest.mark.parametrize("split_bn", [1, 2])
def test_moco_step_moves_the_key_networks_by_the_ema_formula(xp, split_bn):
    method = _moco(split_bn, momentum=0.9)
    optimizer = SGD(method.parameters(), lr=0.5)
    v1, v2 = _views(xp)
    for _ in range(2):  # one step first, so that query and key differ
        before_query, before_key = method.state_dict(), _key_state(method)
        loss = method.training_step(((v1, v2), None))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after_key = _key_state(method)
    for name, key in before_key.items():
        if key.dtype.kind == "f":
            expected = 0.9 * key + (1 - 0.9) * before_query[name]
            np.testing.assert_array_equal(after_key[name], expected, err_msg=name)
            assert not np.array_equal(after_key[name], key) or np.array_equal(key, before_query[name]), name
        else:  # num_batches_tracked: copied from the query, then counted once by the key forward
            assert after_key[name] == before_query[name] + 1, name
    for name, t in list(method.key_encoder.named_buffers()) + list(method.key_projection_head.named_buffers()):
        assert t.grad is None and not t.requires_grad, name


def test_momentum_update_is_exact_and_checks_names():
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = momentum_copy(source)
    source[0].weight.data += 1.0
    source[1].running_var.data *= 3.0
    source[1].num_batches_tracked.data += 5
    before = target.state_dict()
    momentum_update_(target, source, 0.75)
    after, src = target.state_dict(), source.state_dict()
    for name in src:
        if src[name].dtype.kind == "f":
            np.testing.assert_array_equal(after[name], 0.75 * before[name] + (1 - 0.75) * src[name])
        else:
            np.testing.assert_array_equal(after[name], src[name])
    assert target[1].momentum == 0.0 and source[1].momentum == 0.1
    with pytest.raises(ValueError, match="only in source"):
        momentum_update_(momentum_copy(nn.Linear(3, 4, bias=False)), nn.Linear(3, 4), 0.5)


# ---- MoCo: queue and loss -------------------------------------------------------------------


def test_moco_loss_uses_the_old_queue_then_enqueues_this_steps_keys(xp):
    method = _moco(temperature=0.2)
    v1, v2 = _views(xp, n=8)
    old_queue, old_ptr = host(method.queue.buffer).copy(), method.queue.ptr
    loss = method.training_step(((v1, v2), None))
    loss.backward()
    _assert_finite_grads(method.named_parameters(), "MoCo")
    # recompute with the networks as the step left them (key BN momentum 0: its forward is repeatable)
    q = method.projection_head(method.encoder(Tensor(v1)))
    with minicon.no_grad():
        k = method.key_projection_head(method.key_encoder(Tensor(v2)))
    expected = info_nce(q, k, xp.asarray(old_queue), 0.2)
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-5)
    with_new_queue = info_nce(q, k, method.queue.keys(), 0.2)
    assert abs(with_new_queue.item() - loss.item()) > 1e-3
    slots = (old_ptr + np.arange(8)) % 12
    np.testing.assert_allclose(host(method.queue.buffer)[slots], host(l2_normalize(k.data)[0]), rtol=1e-5, atol=1e-6)
    untouched = np.setdiff1d(np.arange(12), slots)
    np.testing.assert_array_equal(host(method.queue.buffer)[untouched], old_queue[untouched])
    assert method.queue.ptr == (old_ptr + 8) % 12


def test_moco_symmetric_averages_both_directions_and_enqueues_both_key_batches(xp):
    method = _moco(symmetric=True)
    v1, v2 = _views(xp, n=4)
    old_queue = method.queue.keys().data.copy()
    loss = method.training_step(((v1, v2), None))
    q1, q2 = (method.projection_head(method.encoder(Tensor(v))) for v in (v1, v2))
    with minicon.no_grad():
        k1, k2 = (method.key_projection_head(method.key_encoder(Tensor(v))) for v in (v1, v2))
    expected = (info_nce(q1, k2, old_queue, 0.1).item() + info_nce(q2, k1, old_queue, 0.1).item()) / 2
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    assert method.queue.ptr == 8
    np.testing.assert_allclose(host(method.queue.buffer)[:4], host(l2_normalize(k1.data)[0]), rtol=1e-5, atol=1e-6)


def test_moco_state_dict_round_trip_resumes_identically(xp):
    def run(method, optimizer, steps):
        losses = []
        for step in range(steps):
            v1, v2 = _views(xp, n=8, seed=step)
            loss = method.training_step(((v1, v2), None))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    minicon.manual_seed(1)
    first = _moco(split_bn=2)
    first_opt = SGD(first.parameters(), lr=0.1, momentum=0.9)
    run(first, first_opt, 2)
    model_state, optimizer_state = first.state_dict(), first_opt.state_dict()
    rng_state = host_rng().bit_generator.state
    assert {"queue.buffer", "queue.pointer", "key_encoder.features.1.running_mean"} <= set(model_state)
    expected = run(first, first_opt, 3)

    minicon.manual_seed(2)  # different initial weights and queue, all overwritten by the checkpoint
    second = _moco(split_bn=2)
    second_opt = SGD(second.parameters(), lr=0.1, momentum=0.9)
    second.load_state_dict(model_state)
    second_opt.load_state_dict(optimizer_state)
    host_rng().bit_generator.state = rng_state
    assert run(second, second_opt, 3) == expected
    for name, value in first.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[name], value, err_msg=name)


def test_moco_split_bn_shuffles_the_key_batch_and_unshuffles_the_keys(xp):
    method = _moco(split_bn=4)
    assert isinstance(method.encoder.features[1], nn.SplitBatchNorm2d)
    assert isinstance(method.key_encoder.features[1], nn.SplitBatchNorm2d)
    v1, v2 = _views(xp, n=8)
    rng_state = host_rng().bit_generator.state
    method.training_step(((v1, v2), None))
    host_rng().bit_generator.state = rng_state
    order = host_rng().permutation(8)  # the step's only draw
    with minicon.no_grad():
        shuffled = method.key_projection_head(method.key_encoder(Tensor(v2[xp.asarray(order)])))
        plain = method.key_projection_head(method.key_encoder(Tensor(v2)))
    expected = host(l2_normalize(shuffled.data)[0])[np.argsort(order)]
    keys = host(method.queue.buffer)[:8]
    np.testing.assert_allclose(keys, expected, rtol=1e-5, atol=1e-6)
    # with split statistics the grouping matters: unshuffled keys would differ
    assert not np.allclose(keys, host(l2_normalize(plain.data)[0]), atol=1e-4)
    with pytest.raises(ValueError, match="multiple of split_bn=4, got 6"):
        method.training_step(((v1[:6], v2[:6]), None))


def test_moco_rejects_bad_arguments():
    for kwargs, match in [({"momentum": 1.5}, "momentum"), ({"temperature": 0}, "temperature"),
                          ({"split_bn": 0}, "split_bn")]:
        with pytest.raises(ValueError, match=match):
            _moco(**{"split_bn": 1, **kwargs})
    with pytest.raises(ValueError, match="out_dim"):
        MoCo(nn.ConvNet(widths=(4,)), nn.Linear(4, 2))


# ---- registry -------------------------------------------------------------------------------


def test_build_method_gives_each_method_its_reference_heads_and_defaults():
    from minicon.train.config import METHODS as CONFIG_METHODS

    assert METHODS == CONFIG_METHODS == ("simclr", "moco", "clip", "simsiam", "byol", "supcon")
    simclr = build_method("SimCLR", nn.ConvNet(widths=(4, 8)))
    assert isinstance(simclr, SimCLR) and simclr.temperature == 0.5 and simclr.num_views == 2
    assert [type(m).__name__ for m in simclr.projection_head.layers] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert simclr.projection_head.out_dim == 128 and simclr.projection_head.layers[0].out_features == 8
    moco = build_method("moco", nn.ConvNet(widths=(4, 8)), queue_size=32, projection_dim=16)
    assert isinstance(moco, MoCo) and (moco.momentum, moco.temperature, moco.split_bn) == (0.99, 0.1, 8)
    assert [type(m).__name__ for m in moco.projection_head.layers] == ["Linear", "ReLU", "Linear"]
    assert moco.queue.keys().shape == (32, 16)
    clip = build_method("clip", nn.ConvNet(widths=(4, 8)), class_names=["cat", "dog"], embed_dim=16)
    assert isinstance(clip, CLIP) and clip.num_views == 1 and clip.image_projection.out_features == 16


def test_build_method_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown method 'dino'; expected one of simclr, moco, clip, "
                                         "simsiam, byol, supcon"):
        build_method("dino", nn.ConvNet(widths=(4,)))
    with pytest.raises(ValueError, match="'simsiam' does not take temperature"):
        build_method("simsiam", nn.ConvNet(widths=(4,)), temperature=0.1)
    with pytest.raises(ValueError, match="'simclr' does not take queue_size"):
        build_method("simclr", nn.ConvNet(widths=(4,)), queue_size=8)
    with pytest.raises(ValueError, match="needs class_names"):
        build_method("clip", nn.ConvNet(widths=(4,)))
    with pytest.raises(ValueError, match="feature_dim"):
        build_method("simclr", nn.Linear(3, 4))


# ---- SimSiam, BYOL, SupCon ------------------------------------------------------------------


def _cos(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _siamese(cls, **kwargs):
    minicon.manual_seed(0)
    return cls(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 6), nn.ProjectionHead(6, 3, 6), **kwargs)


def test_simsiam_loss_is_the_symmetrized_negative_cosine_of_its_own_forward(xp):
    method = _siamese(SimSiam)
    v1, v2 = _views(xp)
    loss = method.training_step(((v1, v2), None))
    loss.backward()
    _assert_finite_grads(method.named_parameters(), "SimSiam")
    with minicon.no_grad():  # BN in train mode: the same batch gives the same outputs
        z = host(method.projection_head(method.encoder(Tensor(xp.concatenate([v1, v2])))))
        p = host(method.predictor(Tensor(xp.asarray(z))))
    expected = -0.5 * (_cos(p[:8], z[8:]).mean() + _cos(p[8:], z[:8]).mean())
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)


def test_simsiam_stop_gradient_is_what_makes_its_gradient_differ_from_the_losss(xp):
    # without the stop-gradient, autograd's gradient is the loss's own (finite differences agree);
    # with it, the targets are constants for autograd but not for the loss, so the check must fail
    minicon.set_default_dtype("float64")
    try:
        for stop_gradient in (False, True):
            method = _siamese(SimSiam, stop_gradient=stop_gradient).double()
            v1, v2 = (Tensor(a.astype("float64"), requires_grad=True) for a in _views(xp, n=4, side=4))

            def loss(a, b):
                return method.training_step(((a, b), None))

            if stop_gradient:
                with pytest.raises(GradcheckError):
                    gradcheck(loss, v1, v2)
            else:
                gradcheck(loss, v1, v2)
    finally:
        minicon.set_default_dtype("float32")


def test_byol_target_is_a_momentum_copy_without_gradient_and_the_loss_matches(xp):
    method = _siamese(BYOL, momentum=0.9)
    names = {n for n, _ in method.named_parameters()}
    assert not any(n.startswith("target_") for n in names) and any(n.startswith("predictor.") for n in names)
    v1, v2 = _views(xp)
    optimizer = SGD(list(method.parameters()), lr=0.5)
    method.training_step(((v1, v2), None)).backward()  # step 1: target updated from equal weights
    optimizer.step()
    optimizer.zero_grad()
    online = {n: host(t).copy() for n, t in method.encoder.named_parameters()}
    before = {n: host(t).copy() for n, t in method.target_encoder.named_buffers() if n in online}
    loss = method.training_step(((v1, v2), None))  # step 2 moves the target toward the new online weights
    for name, value in online.items():
        np.testing.assert_allclose(host(dict(method.target_encoder.named_buffers())[name]),
                                   0.9 * before[name] + 0.1 * value, rtol=1e-5, atol=1e-7)
    with minicon.no_grad():
        views = Tensor(xp.concatenate([v1, v2]))
        q = host(method.predictor(method.projection_head(method.encoder(views))))
        t = host(method.target_projection_head(method.target_encoder(views)))
    expected = (2 - 2 * _cos(q[:8], t[8:]).mean()) + (2 - 2 * _cos(q[8:], t[:8]).mean())
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        _siamese(BYOL, momentum=1.0)


def test_supcon_method_is_supcon_of_both_views_and_nt_xent_when_every_class_is_unique(xp):
    minicon.manual_seed(0)
    method = SupConMethod(nn.ConvNet(widths=(4, 8)), nn.ProjectionHead(8, 8, 4), temperature=0.3)
    v1, v2 = _views(xp)
    labels = np.array([0, 1, 0, 2, 1, 1, 2, 0])
    loss = method.training_step(((v1, v2), labels))
    loss.backward()
    _assert_finite_grads(method.named_parameters(), "SupCon")
    z = method.projection_head(method.encoder(Tensor(xp.concatenate([v1, v2]))))
    np.testing.assert_allclose(loss.item(), supcon(z, xp.asarray(np.tile(labels, 2)), 0.3).item(), rtol=1e-6)
    unique = method.training_step(((v1, v2), np.arange(8)))  # one image per class: NT-Xent
    z = method.projection_head(method.encoder(Tensor(xp.concatenate([v1, v2]))))
    np.testing.assert_allclose(unique.item(), nt_xent(z[:8], z[8:], 0.3).item(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\), one per image, got NoneType"):
        method.training_step(((v1, v2), None))


def test_build_method_makes_the_siamese_and_supcon_heads():
    simsiam = build_method("simsiam", nn.ConvNet(widths=(4, 8)))
    assert isinstance(simsiam, SimSiam) and simsiam.stop_gradient
    assert simsiam.predictor.layers[0].out_features == 32 and simsiam.predictor.out_dim == 128  # P/4 bottleneck
    byol = build_method("byol", nn.ConvNet(widths=(4, 8)), momentum=0.9)
    assert isinstance(byol, BYOL) and byol.momentum == 0.9 and byol.predictor.layers[0].out_features == 8
    sup = build_method("supcon", nn.ConvNet(widths=(4, 8)))
    assert isinstance(sup, SupConMethod) and sup.temperature == 0.1
