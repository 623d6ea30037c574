"""Optimizers: hand-computed steps, PyTorch step-for-step, LARS's trust ratio, state dicts."""

import json

import numpy as np
import pytest

from minicon import Tensor, to_host
from minicon.optim import LARS, SGD, Adam, AdamW

SHAPES = [(3, 4), (4,), (2, 3, 2, 2), ()]


def make_params(xp, shapes=SHAPES, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(xp.asarray(rng.normal(size=s), dtype=dtype), requires_grad=True) for s in shapes]


def gradient(w_host, t):
    """A deterministic gradient that depends on the weights (so trajectories can diverge)."""
    noise = np.random.default_rng(100 + t).normal(size=w_host.shape)
    return np.asarray(np.sin(3 * w_host) + 0.5 * noise)


def set_grads(xp, params, t):
    for p in params:
        p.grad = xp.asarray(gradient(to_host(p.data), t), dtype=p.dtype)


def run(xp, opt, params, steps, start=0):
    for t in range(start, start + steps):
        set_grads(xp, params, t)
        opt.step()
    return [to_host(p.data).copy() for p in params]


def value(xp, rows, dtype=np.float64):
    return Tensor(xp.asarray(np.array(rows, dtype=dtype)), requires_grad=True)


# --- hand-computed steps -------------------------------------------------------------------


def test_sgd_momentum_weight_decay_by_hand(xp):
    w = value(xp, [[1.0, -2.0]])
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    w.grad = xp.asarray([[0.5, 1.0]])
    opt.step()
    # g' = g + 0.01 w = [0.51, 0.98]; b = g'; w = w - 0.1 b
    np.testing.assert_allclose(to_host(w.data), [[0.949, -2.098]], rtol=0, atol=1e-12)
    opt.step()
    # g' = [0.50949, 0.97902]; b = 0.9 [0.51, 0.98] + g' = [0.96849, 1.86102]
    np.testing.assert_allclose(to_host(w.data), [[0.852151, -2.284102]], rtol=0, atol=1e-12)


def test_sgd_nesterov_by_hand(xp):
    w = value(xp, [[1.0]])
    opt = SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    w.grad = xp.asarray([[1.0]])
    opt.step()  # b = 1, step 0.1 (1 + 0.9 * 1)
    np.testing.assert_allclose(to_host(w.data), [[0.81]], atol=1e-12)
    opt.step()  # b = 1.9, step 0.1 (1 + 0.9 * 1.9)
    np.testing.assert_allclose(to_host(w.data), [[0.539]], atol=1e-12)


def test_plain_sgd_is_w_minus_lr_g(xp):
    w = value(xp, [[1.0, 2.0]])
    opt = SGD([w], lr=0.5, momentum=0.0)
    w.grad = xp.asarray([[0.2, -0.4]])
    opt.step()
    opt.step()
    np.testing.assert_allclose(to_host(w.data), [[0.8, 2.4]], atol=1e-12)
    assert "momentum_buffer" not in opt.state[id(w)]


def test_adam_first_steps_move_by_lr_times_sign(xp):
    # constant g: bias-corrected m = g and v = g^2 at every step,
    # so each step is lr * g / (|g| + eps)
    w = value(xp, [[1.0, -1.0]])
    opt = Adam([w], lr=0.01)
    w.grad = xp.asarray([[0.3, -5.0]])
    opt.step()
    np.testing.assert_allclose(to_host(w.data), [[0.99, -0.99]], atol=1e-9)
    opt.step()
    np.testing.assert_allclose(to_host(w.data), [[0.98, -0.98]], atol=1e-9)
    assert opt.state[id(w)]["step"] == 2


def test_adamw_decay_is_decoupled_from_the_gradient(xp):
    w_adamw, w_adam = value(xp, [[2.0]]), value(xp, [[2.0]])
    adamw = AdamW([w_adamw], lr=0.1, weight_decay=0.1)
    adam = Adam([w_adam], lr=0.1, weight_decay=0.1)
    w_adamw.grad, w_adam.grad = xp.zeros((1, 1)), xp.zeros((1, 1))
    adamw.step()
    adam.step()
    # AdamW: w (1 - lr wd) = 1.98 and a zero Adam step; Adam: g' = wd w = 0.2 -> step of lr
    np.testing.assert_allclose(to_host(w_adamw.data), [[1.98]], atol=1e-12)
    np.testing.assert_allclose(to_host(w_adam.data), [[1.9]], atol=1e-7)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, weight_decay=0.5),
    lambda ps: Adam(ps, lr=0.1, weight_decay=0.5),
    lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5),
    lambda ps: LARS(ps, lr=0.1, weight_decay=0.5),
], ids=["SGD", "Adam", "AdamW", "LARS"])
def test_parameters_below_2d_get_no_weight_decay_by_default(xp, make):
    bias, scale, weight = value(xp, [1.0, -2.0]), value(xp, 3.0), value(xp, [[1.0, -2.0]])
    opt = make([bias, scale, weight])
    for p in (bias, scale, weight):
        p.grad = xp.zeros(p.shape)
    opt.step()
    # zero gradient and no decay: nothing moves; the 2-D weight decays
    np.testing.assert_array_equal(to_host(bias.data), [1.0, -2.0])
    np.testing.assert_array_equal(to_host(scale.data), 3.0)
    assert np.all(np.abs(to_host(weight.data)) < [1.0, 2.0])


def test_exclusion_can_be_switched_off(xp):
    bias = value(xp, [1.0, -2.0])
    opt = SGD([bias], lr=0.1, momentum=0.0, weight_decay=0.5, exclude_bias_and_norm=False)
    bias.grad = xp.zeros(2)
    opt.step()
    np.testing.assert_allclose(to_host(bias.data), [0.95, -1.9], atol=1e-12)


# --- LARS ---------------------------------------------------------------------------------


def test_lars_two_steps_by_hand(xp):
    w = value(xp, [[3.0, 4.0]])  # |w| = 5
    opt = LARS([w], lr=2.0, momentum=0.9, weight_decay=0.1, trust_coefficient=1e-3)
    w.grad = xp.asarray([[0.3, 0.4]])  # g + 0.1 w = [0.6, 0.8], norm 1
    opt.step()
    # trust 1e-3 * 5 / 1; b = 2 * 0.005 * [0.6, 0.8]
    np.testing.assert_allclose(to_host(w.data), [[2.994, 3.992]], atol=1e-12)
    opt.param_groups[0]["lr"] = 1.0  # as a schedule would; SimCLR keeps lr inside the buffer
    opt.step()
    # w = 0.998 [3, 4]; g' = 0.999 [0.6, 0.8]; trust = 1e-3 * 4.99 / 0.999
    # b = 0.9 [0.006, 0.008] + 1 * 1e-3 * 4.99 * [0.6, 0.8] = [0.008394, 0.011192]
    np.testing.assert_allclose(to_host(w.data), [[2.985606, 3.980808]], atol=1e-12)


def test_lars_trust_ratio_is_one_for_zero_norms(xp):
    ones, zeros = xp.ones((2, 2)), xp.zeros((2, 2))
    assert float(LARS.trust_ratio(zeros, ones, 1e-3)) == 1.0
    assert float(LARS.trust_ratio(ones, zeros, 1e-3)) == 1.0
    assert float(LARS.trust_ratio(ones, 2 * ones, 1e-3)) == pytest.approx(5e-4)

    w = Tensor(xp.zeros((2, 2)), requires_grad=True)
    opt = LARS([w], lr=0.1, weight_decay=0.0)
    w.grad = xp.ones((2, 2))
    opt.step()  # trust 1: a plain step of lr * g
    np.testing.assert_allclose(to_host(w.data), -0.1 * np.ones((2, 2)), atol=1e-12)


def test_lars_excludes_biases_from_the_trust_ratio(xp):
    bias = value(xp, [1.0, 2.0])
    opt = LARS([bias], lr=0.1, weight_decay=0.5)
    bias.grad = xp.asarray([0.5, 0.5])
    opt.step()  # no decay, trust 1
    np.testing.assert_allclose(to_host(bias.data), [0.95, 1.95], atol=1e-12)

    bias = value(xp, [1.0, 2.0])
    opt = LARS([bias], lr=0.1, weight_decay=0.5, exclude_bias_and_norm=False)
    bias.grad = xp.asarray([0.5, 0.5])
    opt.step()  # g' = [1, 1.5]; trust = 1e-3 * sqrt(5) / sqrt(3.25)
    trust = 1e-3 * np.sqrt(5) / np.sqrt(3.25)
    np.testing.assert_allclose(to_host(bias.data), [1 - 0.1 * trust, 2 - 0.15 * trust], atol=1e-12)


def test_lars_without_adaptation_is_sgd_momentum(xp):
    # 1-D parameters get trust 1 and no decay; at a constant lr, lr * (SGD buffer) = LARS buffer
    a, b = make_params(xp, [(5,)]), make_params(xp, [(5,)])
    np.testing.assert_allclose(
        run(xp, LARS(a, lr=0.05), a, 6), run(xp, SGD(b, lr=0.05), b, 6), rtol=1e-12
    )


# --- PyTorch step for step ----------------------------------------------------------------

TORCH_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.0)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.3)),
]


def torch_run(name, kwargs, params, steps, groups=None):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for torch.optim parity")
    tparams = [torch.tensor(to_host(p.data).copy(), requires_grad=True) for p in params]
    spec = tparams if groups is None else [
        {**g, "params": [tparams[i] for i in g["params"]]} for g in groups
    ]
    opt = getattr(torch.optim, name)(spec, **kwargs)
    for t in range(steps):
        for p in tparams:
            p.grad = torch.from_numpy(gradient(p.detach().numpy(), t))
        opt.step()
    return [p.detach().numpy() for p in tparams]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES)
def test_matches_torch_step_for_step(xp, name, kwargs):
    params = make_params(xp)
    expected = torch_run(name, kwargs, params, steps=8)
    opt = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[name](
        params, exclude_bias_and_norm=False, **kwargs
    )
    for got, want in zip(run(xp, opt, params, 8), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_default_exclusion_equals_torch_with_a_no_decay_group(xp, name):
    params = make_params(xp)
    groups = [{"params": [0, 2], "weight_decay": 0.1}, {"params": [1, 3], "weight_decay": 0.0}]
    # torch's SGD defaults to momentum 0, minicon's to 0.9
    kwargs = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.05}
    expected = torch_run(name, kwargs, params, steps=5, groups=groups)
    opt = {"SGD": SGD, "AdamW": AdamW}[name](params, weight_decay=0.1, **kwargs)
    for got, want in zip(run(xp, opt, params, 5), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --- behaviour shared by every optimizer --------------------------------------------------

ALL = {
    "SGD": lambda ps: SGD(ps, lr=0.05, weight_decay=0.01, nesterov=True),
    "Adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    "AdamW": lambda ps: AdamW(ps, lr=0.01),
    "LARS": lambda ps: LARS(ps, lr=0.5),
}


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_continues_exactly(xp, name):
    params = make_params(xp)
    opt = ALL[name](params)
    run(xp, opt, params, 3)
    saved = opt.state_dict()
    for entry in saved["state"].values():
        assert isinstance(entry["step"], int)
        assert all(isinstance(v, np.ndarray) for k, v in entry.items() if k != "step")
    # what a checkpoint writer does: scalars through JSON (string keys), arrays kept aside
    arrays = {(i, k): v for i, s in saved["state"].items() for k, v in s.items() if k != "step"}
    text = json.dumps({"steps": {i: s["step"] for i, s in saved["state"].items()},
                       "param_groups": saved["param_groups"]})
    frozen = {key: v.copy() for key, v in arrays.items()}

    clone = [Tensor(xp.asarray(to_host(p.data).copy()), requires_grad=True) for p in params]
    expected = run(xp, opt, params, 4, start=3)
    for key, v in arrays.items():  # the saved arrays did not follow the optimizer
        np.testing.assert_array_equal(v, frozen[key])

    loaded = json.loads(text)
    state = {i: {"step": step, **{k: frozen[(int(i), k)] for (j, k) in frozen if j == int(i)}}
             for i, step in loaded["steps"].items()}
    resumed = ALL[name](clone)
    resumed.load_state_dict({"state": state, "param_groups": loaded["param_groups"]})
    for got, want in zip(run(xp, resumed, clone, 4, start=3), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ALL)
def test_updates_in_place_and_keep_float32(xp, name):
    params = make_params(xp, dtype=np.float32)
    arrays = [p.data for p in params]
    opt = ALL[name](params)
    run(xp, opt, params, 2)
    for p, a in zip(params, arrays):
        assert p.data is a
        assert p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[id(p)].values() if hasattr(v, "dtype"))


@pytest.mark.parametrize("name", ALL)
def test_zero_grad_and_parameters_without_grad_are_skipped(xp, name):
    params = make_params(xp)
    opt = ALL[name](params)
    run(xp, opt, params, 1)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    before = [to_host(p.data).copy() for p in params]
    params[0].grad = xp.ones(params[0].shape)
    opt.step()
    assert opt.state[id(params[0])]["step"] == 2
    assert opt.state[id(params[1])]["step"] == 1
    for p, b in zip(params[1:], before[1:]):
        np.testing.assert_array_equal(to_host(p.data), b)


def test_param_groups_have_their_own_lr(xp):
    frozen, moving = make_params(xp, [(2, 2)]), make_params(xp, [(2, 2)], seed=1)
    before = [to_host(p.data).copy() for p in frozen + moving]
    opt = SGD([{"params": frozen, "lr": 0.0}, {"params": moving}], lr=0.1)
    run(xp, opt, frozen + moving, 2)
    np.testing.assert_array_equal(to_host(frozen[0].data), before[0])
    assert not np.allclose(to_host(moving[0].data), before[1])
    assert opt.param_groups[1]["lr"] == 0.1


def test_load_state_dict_rejects_a_mismatch(xp):
    params = make_params(xp)
    opt = Adam(params)
    run(xp, opt, params, 1)
    saved = opt.state_dict()
    other = Adam(make_params(xp, [(3, 5), (4,), (2, 3, 2, 2), ()]))
    with pytest.raises(ValueError, match="exp_avg.*shape"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="groups"):
        Adam([{"params": params[:2]}, {"params": params[2:]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="unknown"):
        SGD(params, lr=0.1).load_state_dict(saved)


@pytest.mark.parametrize("make,match", [
    (lambda ps: SGD(ps, lr=-1.0), "lr"),
    (lambda ps: SGD(ps, lr=0.1, momentum=1.0), "momentum"),
    (lambda ps: SGD(ps, lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.0, nesterov=True), "nesterov"),
    (lambda ps: Adam(ps, betas=(0.9, 1.0)), "betas"),
    (lambda ps: AdamW(ps, eps=-1.0), "eps"),
    (lambda ps: LARS(ps, lr=0.1, trust_coefficient=0.0), "trust_coefficient"),
    (lambda ps: SGD([{"params": ps, "weight_dacay": 0.1}], lr=0.1), "weight_dacay"),
    (lambda ps: SGD([], lr=0.1), "empty"),
    (lambda ps: SGD(ps + ps[:1], lr=0.1), "more than once"),
    (lambda ps: SGD([Tensor([1.0, 2.0])], lr=0.1), "does not require grad"),
    (lambda ps: SGD([ps[0] * 2], lr=0.1), "not a leaf"),
])
def test_bad_arguments_raise_value_error_naming_them(xp, make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params(xp))


def test_a_single_tensor_is_a_type_error(xp):
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(make_params(xp)[0], lr=0.1)
