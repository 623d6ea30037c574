"""Learning-rate schedule and batch-size scaling rules."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicon import Tensor
from minicon.optim import SGD, WarmupCosine, linear_scaling, sqrt_scaling, warmup_cosine


@st.composite
def schedules(draw):
    total = draw(st.integers(1, 400))
    warmup = draw(st.integers(0, total - 1))
    base = draw(st.floats(1e-4, 10.0))
    final = draw(st.floats(0.0, 1.0)) * base
    return total, warmup, base, final


def test_small_schedule_by_hand():
    # T = 4, W = 2: warmup 1/2, 2/2; cosine progress 1/2, 2/2
    lrs = [warmup_cosine(s, 4, 2, base_lr=1.0, final_lr=0.2) for s in range(4)]
    assert lrs == pytest.approx([0.5, 1.0, 0.6, 0.2], abs=1e-15)


@given(schedules())
def test_shape_of_the_schedule(args):
    total, warmup, base, final = args
    lrs = [warmup_cosine(s, total, warmup, base, final) for s in range(total)]
    if total > 1:  # a one-step run's only step is its last, so it gets final_lr
        assert lrs[0] > 0
    assert lrs[-1] == final  # exactly, not approximately
    if warmup:
        assert lrs[0] == pytest.approx(base / warmup)
        assert lrs[warmup - 1] == base
        assert np.all(np.diff(lrs[:warmup]) > 0)
    assert max(lrs) <= base
    assert np.all(np.diff(lrs[max(warmup - 1, 0):]) <= 0)
    assert min(lrs[warmup:]) >= final


def test_without_warmup_step_zero_is_one_cosine_step_below_the_peak():
    lr = warmup_cosine(0, 10, 0, base_lr=1.0)
    assert lr == pytest.approx(0.5 * (1 + math.cos(math.pi / 10)))
    assert 0 < lr < 1.0


@pytest.mark.parametrize("kwargs,name", [
    (dict(step=10, total_steps=10, warmup_steps=2, base_lr=0.1), "step"),
    (dict(step=-1, total_steps=10, warmup_steps=2, base_lr=0.1), "step"),
    (dict(step=0.5, total_steps=10, warmup_steps=2, base_lr=0.1), "step"),
    (dict(step=0, total_steps=0, warmup_steps=0, base_lr=0.1), "total_steps"),
    (dict(step=0, total_steps=10.0, warmup_steps=2, base_lr=0.1), "total_steps"),
    (dict(step=0, total_steps=10, warmup_steps=10, base_lr=0.1), "warmup_steps"),
    (dict(step=0, total_steps=10, warmup_steps=-1, base_lr=0.1), "warmup_steps"),
    (dict(step=0, total_steps=10, warmup_steps=2, base_lr=0.0), "base_lr"),
    (dict(step=0, total_steps=10, warmup_steps=2, base_lr=0.1, final_lr=0.2), "final_lr"),
    (dict(step=0, total_steps=10, warmup_steps=2, base_lr=0.1, final_lr=-0.1), "final_lr"),
])
def test_warmup_cosine_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        warmup_cosine(**kwargs)


def test_scaling_rules():
    # SimCLR appendix B.1: 0.3 * B / 256 and 0.075 * sqrt(B) agree at B = 4096
    assert linear_scaling(0.3, 4096) == pytest.approx(4.8)
    assert sqrt_scaling(0.075, 4096) == pytest.approx(4.8)
    assert linear_scaling(0.1, 128, reference=64) == pytest.approx(0.2)
    assert sqrt_scaling(0.1, 1024, reference=256) == pytest.approx(0.2)
    for rule in (linear_scaling, sqrt_scaling):
        with pytest.raises(ValueError, match="batch_size"):
            rule(0.1, 0)
        with pytest.raises(ValueError, match="batch_size"):
            rule(0.1, 64.0)
        with pytest.raises(ValueError, match="base_lr"):
            rule(-0.1, 64)
        with pytest.raises(ValueError, match="reference"):
            rule(0.1, 64, reference=0)


def make_optimizer(lrs=(0.4, 0.1)):
    groups = [{"params": [Tensor(np.ones((2, 2)), requires_grad=True)], "lr": lr} for lr in lrs]
    return SGD(groups, lr=lrs[0])


def test_warmup_cosine_object_sets_each_groups_lr():
    opt = make_optimizer()
    schedule = WarmupCosine(opt, total_steps=6, warmup_steps=2, final_lr=0.01)
    seen = []
    for _ in range(6):
        seen.append([g["lr"] for g in opt.param_groups])
        schedule.step()
    for s, (a, b) in enumerate(seen):
        assert a == warmup_cosine(s, 6, 2, 0.4, 0.01)
        assert b == warmup_cosine(s, 6, 2, 0.1, 0.01)
    assert opt.param_groups[0]["lr"] == 0.01  # finished: stays at final_lr
    with pytest.raises(ValueError, match="past total_steps"):
        schedule.step()


def test_warmup_cosine_state_dict_resumes_the_same_rates():
    full_opt = make_optimizer()
    full = WarmupCosine(full_opt, total_steps=8, warmup_steps=3)
    rates = []
    for _ in range(8):
        rates.append(full_opt.param_groups[1]["lr"])
        full.step()

    opt = make_optimizer()
    schedule = WarmupCosine(opt, total_steps=8, warmup_steps=3)
    for _ in range(4):
        schedule.step()
    saved_opt, saved = opt.state_dict(), schedule.state_dict()
    assert saved["position"] == 4

    # a resumed run: fresh objects built from the config, then both states loaded
    opt = make_optimizer()
    schedule = WarmupCosine(opt, total_steps=8, warmup_steps=3)
    opt.load_state_dict(saved_opt)
    schedule.load_state_dict(saved)
    resumed = []
    for _ in range(4):
        resumed.append(opt.param_groups[1]["lr"])
        schedule.step()
    assert resumed == rates[4:]

    with pytest.raises(ValueError, match="base_lrs"):
        WarmupCosine(make_optimizer((0.1,)), 8, 3).load_state_dict(saved)
    with pytest.raises(ValueError, match="position"):
        schedule.load_state_dict({"position": 9, "base_lrs": [0.4, 0.1]})
