"""The trainer: run folder, logs, checkpoints, exact resume, NaN stop, run-folder checks."""

import json
import os
import signal

import numpy as np
import pytest

import minicon
from minicon.train import Trainer, TrainingError
from minicon.train.config import ConfigError, TrainConfig
from minicon.train.trainer import train_transform


def tiny_data(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return images, labels, [f"class{i}" for i in range(10)]


def tiny_config(**overrides):
    values = dict(method="simclr", epochs=2, batch_size=16, widths=[4, 8], knn_train=32, knn_test=16,
                  lr=1e-3, warmup_epochs=0.5, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def make(tmp_path, name="run", resume=False, **overrides):
    return Trainer(tiny_config(**overrides), tmp_path / name, resume=resume, progress=False,
                   train_data=tiny_data(64, 0), test_data=tiny_data(32, 1))


def nan_at(trainer, step):
    """Make the ``step``-th training step (1-based) return a NaN loss."""
    original = trainer.model.training_step
    calls = []

    def training_step(batch):
        calls.append(1)
        loss = original(batch)
        return loss * float("nan") if len(calls) == step else loss

    trainer.model.training_step = training_step


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fit_writes_the_run_folder(tmp_path):
    trainer = make(tmp_path)
    result = trainer.fit()
    run = tmp_path / "run"
    assert {"config.json", "steps.jsonl", "epochs.jsonl", "last.npz", "best.npz"} <= {p.name for p in run.iterdir()}
    steps = read(run / "steps.jsonl")
    assert [s["step"] for s in steps] == list(range(1, 9))  # 64 images / 16 per batch × 2 epochs
    assert all(np.isfinite(s["loss"]) for s in steps)
    assert steps[0]["lr"] > 0 and steps[-1]["lr"] == 0.0  # warmup starts above 0; cosine ends at 0
    epochs = read(run / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert 0 <= result["knn_top1"] <= 1 and result["effective_rank"] >= 1
    resolved = json.loads((run / "config.json").read_text())
    assert (resolved["temperature"], resolved["crop_scale"]) == (0.2, 0.08)  # SimCLR's preset filled in


@pytest.mark.parametrize("method, given, expected", [("simclr", None, 2e-3), ("moco", None, 1e-3),
                                                     ("clip", None, 1e-3), ("simclr", 5e-4, 5e-4)])
def test_the_peak_learning_rate_is_the_methods_preset_unless_given(tmp_path, method, given, expected):
    trainer = make(tmp_path, lr=given, method=method, queue_size=32)
    assert trainer.config.lr == expected
    assert trainer.schedule.base_lrs == [expected] * len(trainer.optimizer.param_groups)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == expected


@pytest.mark.parametrize("method", ["simclr", "byol"])  # BYOL: its target network is in the checkpoint
def test_resume_after_ctrl_c_reproduces_the_uninterrupted_losses(tmp_path, method):
    reference = make(tmp_path, "whole", method=method)
    reference.fit()
    expected = [s["loss"] for s in read(tmp_path / "whole" / "steps.jsonl")]

    trainer = make(tmp_path, "cut", method=method)
    step = trainer.model.training_step
    calls = []

    def interrupted_at_step_3(batch):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the handler lets this step finish, then saves
        return step(batch)

    trainer.model.training_step = interrupted_at_step_3
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert len(read(tmp_path / "cut" / "steps.jsonl")) == 3

    resumed = make(tmp_path, "cut", resume=True, method=method)
    assert resumed.step == 3
    resumed.fit()
    got = [s["loss"] for s in read(tmp_path / "cut" / "steps.jsonl")]
    assert got == expected  # bit for bit: same batches, augmentations, weights and optimizer state
    # the epoch cut at step 3 is averaged over all its 4 steps, and the clock goes on from the stop
    epochs, whole = read(tmp_path / "cut" / "epochs.jsonl"), read(tmp_path / "whole" / "epochs.jsonl")
    assert [e["loss"] for e in epochs] == [e["loss"] for e in whole]
    assert 0 < epochs[0]["wall_s"] < epochs[1]["wall_s"]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make(tmp_path)
    nan_at(trainer, 6)
    with pytest.raises(TrainingError, match=r"loss became nan at step 6 \(epoch 2\).*last.npz"):
        trainer.fit()
    state = minicon.train.load_checkpoint(tmp_path / "run" / "last.npz")
    assert state["step"] == 4  # the end of epoch 1, before the bad step


def test_run_folder_checks(tmp_path):
    make(tmp_path).fit()
    with pytest.raises(ConfigError, match="already holds this run; pass --resume"):
        make(tmp_path)
    with pytest.raises(ConfigError, match=r"already holds a different run \(differs in lr\)"):
        make(tmp_path, lr=0.5)
    with pytest.raises(ConfigError, match="holds no run to resume"):
        make(tmp_path, "empty", resume=True)


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="method must be one of simclr, moco, clip, simsiam, byol, supcon, "
                                          "got 'dino'"):
        tiny_config(method="dino").validate()
    with pytest.raises(ConfigError, match="simsiam has no temperature"):
        tiny_config(method="simsiam", temperature=0.2).validate()
    with pytest.raises(ConfigError, match="unknown config keys: epoch"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        tiny_config(batch_size=1).validate()
    with pytest.raises(ConfigError, match="crop_size must be an int of at least 8 pixels, got 4"):
        tiny_config(crop_size=4).validate()
    for bad in (24.0, True, "24"):  # a TOML file can hold any type
        with pytest.raises(ConfigError, match=f"crop_size must be an int, got {bad!r}"):
            tiny_config(crop_size=bad).validate()
    with pytest.raises(ConfigError, match="temperature must be a finite number, got nan"):
        tiny_config(temperature=float("nan")).validate()
    for ok in (dict(temperature=1, lr=1, crop_scale=1), dict(widths=(8, 16))):  # ints pass as floats, tuples as lists
        assert tiny_config(**ok).validate().widths == list(ok.get("widths", tiny_config().widths))


def test_crop_size_must_survive_the_convnet_pools_and_old_runs_read_as_32(tmp_path):
    with pytest.raises(ConfigError, match="crop_size 8 is too small for a ConvNet of 5 blocks: its views need "
                                          "at least 16 pixels"):
        tiny_config(widths=[4, 4, 4, 4, 4], crop_size=8).validate()
    tiny_config(widths=[4, 4, 4, 4, 4], crop_size=16).validate()
    old = tiny_config().to_dict()
    del old["crop_size"]  # a config.json written before crop_size existed
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert TrainConfig.from_run(tmp_path / "config.json").crop_size == 32
    assert TrainConfig().crop_size == 24


@pytest.mark.parametrize("method", ["simclr", "moco", "clip"])
def test_crop_size_sets_the_side_of_the_training_views(method):
    images = tiny_data(4, 0)[0]
    views = train_transform(tiny_config(method=method, crop_size=20, crop_scale=0.5).validate())(images)
    views = views if method == "clip" else views[0]
    assert views.shape == (4, 3, 20, 20) and views.dtype == np.float32


@pytest.mark.parametrize("method", ["moco", "clip", "simsiam", "byol", "supcon"])
def test_other_methods_train_and_resume(tmp_path, method):
    trainer = make(tmp_path, method=method, epochs=1, queue_size=32)
    result = trainer.fit()
    steps = read(tmp_path / "run" / "steps.jsonl")
    assert np.isfinite(steps[-1]["loss"])
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["crop_scale"] == (0.2 if method == "moco" else 0.08)  # MoCo v2 crops gentler
    assert 0 <= result["knn_top1"] <= 1
    # the monitor's diagnostics are of the projections z (SimCLR/MoCo head 128-d, CLIP embed 128-d)
    assert result["feature_dim"] == 128
    if method == "clip":  # the learned multiplier 1/τ, logged each step, as the Parameter says
        scale = float(np.exp(trainer.model.logit_scale.item()))
        assert steps[-1]["logit_scale"] == pytest.approx(scale, rel=1e-12)
        assert abs(steps[0]["logit_scale"] - 1 / 0.07) < 0.1
    else:
        assert "logit_scale" not in steps[-1]
