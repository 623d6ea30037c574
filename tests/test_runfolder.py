"""Run folders never lose a run: locks, torn logs, kill -9 mid-write, bad checkpoints, dead ends.

Each test reproduces one fault of issues 17 (part 5) and 20 on a tiny run
(64 random images, a 4-8 ConvNet, 4 steps per epoch).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from minicon.cli import main
from minicon.train import Trainer, TrainingError, load_checkpoint, save_checkpoint
from minicon.train.config import ConfigError
from minicon.train.runfolder import read_jsonl, truncate_logs
from minicon.train import CollapseWarning

from .cifar_fixtures import shrink_layouts, write_binary
from .test_train import make, nan_at, read, tiny_config, tiny_data

ROOT = Path(__file__).resolve().parents[1]


def interrupt_at(trainer, step, times=1):
    """Send ``times`` SIGINTs from inside the ``step``-th training step (1-based)."""
    original = trainer.model.training_step
    calls = []

    def training_step(batch):
        calls.append(1)
        if len(calls) == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return original(batch)

    trainer.model.training_step = training_step


# read_jsonl: torn lines

def test_read_jsonl_drops_a_torn_last_line_and_names_other_damage(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    with pytest.raises(ValueError, match=r"steps.jsonl, line 3: torn"):
        read_jsonl(path, drop_torn_tail=False)
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"steps.jsonl, line 2: not a JSON object"):
        read_jsonl(path)
    path.write_text('{"step": 1}\n[2]\n')  # a complete line that is not an object is damage, not a tear
    with pytest.raises(ValueError, match=r"line 2: not a JSON object"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_truncate_logs_keeps_the_checkpoints_steps_and_names_a_record_without_one(tmp_path):
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps({"step": i, "loss": 0.5}) + "\n" for i in (1, 2, 3)))
    (tmp_path / "epochs.jsonl").write_text('{"step": 2, "epoch": 1}\n{"step": 4, "ep')
    truncate_logs(tmp_path, 2)
    assert [r["step"] for r in read(tmp_path / "steps.jsonl")] == [1, 2]
    assert (tmp_path / "epochs.jsonl").read_text() == '{"step": 2, "epoch": 1}\n'  # the torn line is gone
    (tmp_path / "steps.jsonl").write_text('{"step": 1}\n{"loss": 2.0}\n')
    with pytest.raises(ValueError, match=r"steps.jsonl: record 2 has no integer step"):
        truncate_logs(tmp_path, 2)


def test_resume_and_plot_tolerate_a_torn_last_line(tmp_path):
    trainer = make(tmp_path)
    interrupt_at(trainer, 6)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    run = tmp_path / "run"
    for name in ("steps.jsonl", "epochs.jsonl"):
        with open(run / name, "a") as f:
            f.write('{"step": 99, "lo')  # a crash mid-write
    from minicon.plots import training_curves

    training_curves(run)  # plots what is whole
    resumed = make(tmp_path, resume=True)
    assert resumed.step == 6
    resumed.fit()
    assert [s["step"] for s in read(run / "steps.jsonl")] == list(range(1, 9))
    assert [e["epoch"] for e in read(run / "epochs.jsonl")] == [1, 2]


# locking

def test_a_second_trainer_on_the_same_folder_is_refused_until_the_first_ends(tmp_path):
    first = make(tmp_path)
    with pytest.raises(ConfigError, match=r"run is in use by another minicon train .*\.lock.*choose another --out"):
        make(tmp_path)
    with pytest.raises(ConfigError, match="in use by another"):
        make(tmp_path, resume=True)
    first.fit()  # releases the lock when it returns
    with pytest.raises(ConfigError, match="already holds this run"):  # the folder is free again
        make(tmp_path)


def test_the_lock_is_held_against_another_process(tmp_path):
    first = make(tmp_path)
    code = ("import sys; from minicon.train.runfolder import lock_run_dir\n"
            "try:\n    lock_run_dir(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n")
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "is in use by another minicon train" in child.stdout
    first.close()
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout == "" and child.returncode == 0


def test_no_fcntl_is_a_one_line_error_not_an_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: import fcntl raises ImportError
    with pytest.raises(ConfigError, match=r"run: locking a run folder needs fcntl.flock"):
        make(tmp_path)


def test_a_failed_start_releases_the_lock(tmp_path):
    with pytest.raises(ConfigError, match="--batch-size 128 is larger than the 64 training images"):
        make(tmp_path, batch_size=128)
    make(tmp_path).close()  # not locked by the failed one


# kill -9 in the middle of a checkpoint write

KILLER = """
import io, os, signal, sys
from pathlib import Path
import minicon.train.checkpoint as checkpoint
from tests.test_train import make

run, kill_at = Path(sys.argv[1]), int(sys.argv[2])
real, calls = checkpoint.write_atomic, []

def write_then_die(path, write):  # half the archive in a temp file, then kill -9 as the OOM killer would
    calls.append(path)
    if len(calls) == kill_at:
        buffer = io.BytesIO()
        write(buffer)
        (Path(path).parent / ".tmp-killed.npz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, write)

checkpoint.write_atomic = write_then_die
if len(sys.argv) > 3:  # every epoch's kNN beats the last, so epoch 2 writes best.npz over epoch 1's
    from minicon.train import Trainer

    real_monitor = Trainer.monitor
    Trainer.monitor = lambda self: {**real_monitor(self), "knn_top1": self.step / 8}
make(run.parent, run.name).fit()
"""


@pytest.mark.parametrize("kill_at, saved_step", [(2, 4), (4, 4)])  # 2: best.npz of epoch 1; 4: last.npz of epoch 2
def test_kill_9_during_a_checkpoint_write_loses_nothing(tmp_path, kill_at, saved_step):
    reference = make(tmp_path, "whole")
    reference.fit()
    expected = read(tmp_path / "whole" / "steps.jsonl")

    run = tmp_path / "cut"
    child = subprocess.run([sys.executable, "-c", KILLER, str(run), str(kill_at)], cwd=ROOT, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert (run / ".tmp-killed.npz").exists()
    assert load_checkpoint(run / "last.npz")["step"] == saved_step  # the last good checkpoint loads

    resumed = make(tmp_path, "cut", resume=True)  # the killed process held the lock; the OS released it
    assert not (run / ".tmp-killed.npz").exists()  # the orphan is gone
    resumed.fit()
    steps = read(run / "steps.jsonl")
    assert [s["step"] for s in steps] == list(range(1, 9))  # none missing, none twice
    # another process: same BLAS, same thread count (the environment is inherited), so the same floats
    assert [s["loss"] for s in steps] == [s["loss"] for s in expected]
    epochs = read(run / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert [e["knn_top1"] for e in epochs] == [e["knn_top1"] for e in read(tmp_path / "whole" / "epochs.jsonl")]
    best = load_checkpoint(run / "best.npz")
    assert best["best"] == max(e["knn_top1"] for e in epochs)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".tmp-")) == []


def test_kill_9_while_best_npz_is_replaced_keeps_the_previous_best(tmp_path):
    run = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", KILLER, str(run), "5", "improve"], cwd=ROOT, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr  # killed writing epoch 2's best.npz
    best = load_checkpoint(run / "best.npz")
    assert (best["step"], best["best"]) == (4, 0.5)  # epoch 1's, whole (a copy would have truncated it)
    assert load_checkpoint(run / "last.npz")["step"] == 8 and len(read(run / "epochs.jsonl")) == 2
    resumed = make(tmp_path, resume=True)
    assert not resumed.finished()  # epoch 2's best.npz is still to be written
    assert resumed.fit()["knn_top1"] == 1.0  # the logged monitor result, as minicon train prints it
    best = load_checkpoint(run / "best.npz")
    assert (best["step"], best["best"]) == (8, 1.0)
    assert load_checkpoint(run / "last.npz")["best"] == 1.0


# run files without a config, dead ends

def test_a_folder_with_run_files_but_no_config_is_refused(tmp_path):
    make(tmp_path).fit()
    run = tmp_path / "run"
    (run / "config.json").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for resume in (False, True):
        with pytest.raises(ConfigError, match=r"run holds steps.jsonl, epochs.jsonl, last.npz, best.npz but "
                                              r"no config.json: restore"):
            make(tmp_path, resume=resume)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing touched


def test_an_edited_config_json_is_named(tmp_path, capsys):
    make(tmp_path).fit()
    path = tmp_path / "run" / "config.json"
    values = json.loads(path.read_text())
    path.write_text(json.dumps({**values, "epochs": -1}))
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (f"minicon: error: {path} is not a minicon run config: "
                                               "epochs must be > 0, got -1")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"config.json is not a minicon run config"):
        make(tmp_path, resume=True)


def test_a_run_stopped_before_its_first_checkpoint_can_start_afresh(tmp_path):
    trainer = make(tmp_path)
    nan_at(trainer, 2)
    with pytest.raises(TrainingError, match=r"loss became nan at step 2 \(epoch 1\); stopped. No checkpoint "
                                            r"exists yet \(the first is written at the end of epoch 1, step 4\)"):
        trainer.fit()
    with pytest.raises(ConfigError, match=r"--resume: .* has no checkpoint \(last.npz\) yet: .*start it afresh"):
        make(tmp_path, resume=True)
    make(tmp_path).fit()  # replaces the dead run
    assert [s["step"] for s in read(tmp_path / "run" / "steps.jsonl")] == list(range(1, 9))


def test_the_nan_message_names_the_checkpoint_that_exists(tmp_path):
    trainer = make(tmp_path)
    nan_at(trainer, 6)
    with pytest.raises(TrainingError, match=r"The last good checkpoint is .*last.npz \(step 4\)"):
        trainer.fit()


# resume after the data moved

def test_resume_after_the_data_moved(tmp_path, monkeypatch, capsys):
    shrink_layouts(monkeypatch)  # 15 train and 4 test images
    old, new = tmp_path / "old", tmp_path / "new"
    write_binary(old, "cifar10")
    config = tiny_config(batch_size=4, knn_train=8, knn_test=4, data_dir=str(old), epochs=2)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    interrupt_at(trainer, 4)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    old.rename(new)
    monkeypatch.delenv("MINICON_DATA_DIR", raising=False)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--data-dir", str(new)]) == 0, \
        capsys.readouterr().err
    assert not old.exists()  # no empty folder (or download) at the old place
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_dir"] == str(new)
    assert [s["step"] for s in read(tmp_path / "run" / "steps.jsonl")] == list(range(1, 7))


def test_resume_takes_minicon_data_dir_over_the_saved_folder(tmp_path, monkeypatch, capsys):
    shrink_layouts(monkeypatch)
    old, new = tmp_path / "old", tmp_path / "new"
    write_binary(old, "cifar10")
    trainer = Trainer(tiny_config(batch_size=4, knn_train=8, knn_test=4, data_dir=str(old)), tmp_path / "run",
                      progress=False)
    interrupt_at(trainer, 4)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    old.rename(new)
    monkeypatch.setenv("MINICON_DATA_DIR", str(new))
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 0, capsys.readouterr().err
    assert not old.exists()


# the monitor, checkpoints before it

def test_monitor_sizes_are_checked_before_training():
    with pytest.raises(ConfigError, match="knn_test must be at least 2"):
        tiny_config(knn_test=1).validate()


def test_a_failing_monitor_loses_no_training(tmp_path):
    trainer = make(tmp_path, knn_every=1)

    def broken():
        raise MemoryError("monitor")

    trainer.monitor = broken
    with pytest.raises(MemoryError):
        trainer.fit()
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.npz")["step"] == 4  # saved before the monitor ran
    resumed = make(tmp_path, resume=True)
    resumed.fit()  # writes the record the failed monitor did not
    epochs = read(run / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2] and all("knn_top1" in e for e in epochs)
    assert epochs[0]["loss"] == pytest.approx(np.mean([s["loss"] for s in read(run / "steps.jsonl")[:4]]))


# Ctrl-C twice

def test_two_ctrl_c_report_what_is_on_disk(tmp_path):
    trainer = make(tmp_path)
    interrupt_at(trainer, 6, times=2)  # the second stops the step at once, unsaved
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert trainer.step == 5 and trainer.saved_step == 4
    assert load_checkpoint(tmp_path / "run" / "last.npz")["step"] == 4
    assert trainer.checkpoint_status().endswith("last.npz (step 4)")
    resumed = make(tmp_path, resume=True)
    resumed.fit()
    assert [s["step"] for s in read(tmp_path / "run" / "steps.jsonl")] == list(range(1, 9))


def test_ctrl_c_at_the_last_step_leaves_the_last_epoch_to_the_resumed_run(tmp_path):
    trainer = make(tmp_path)
    interrupt_at(trainer, 8)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.npz")["step"] == 8 and len(read(run / "epochs.jsonl")) == 1
    resumed = make(tmp_path, resume=True)
    assert not resumed.finished()  # its last epoch has no record yet
    result = resumed.fit()
    assert 0 <= result["knn_top1"] <= 1 and [e["epoch"] for e in read(run / "epochs.jsonl")] == [1, 2]
    assert make(tmp_path, "run", resume=True).finished()


def test_a_second_ctrl_c_during_the_monitor_stops_it_after_the_checkpoint(tmp_path):
    trainer = make(tmp_path)
    monitor = trainer.monitor

    def interrupted_monitor():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # raises here: the monitor is not shielded
        return monitor()

    trainer.monitor = interrupted_monitor
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert trainer.saved_step == 4 and read(tmp_path / "run" / "epochs.jsonl") == []
    make(tmp_path, resume=True).fit()
    assert [e["epoch"] for e in read(tmp_path / "run" / "epochs.jsonl")] == [1, 2]


def test_two_ctrl_c_on_the_command_line_say_no_checkpoint_was_saved(tmp_path, monkeypatch, capsys):
    shrink_layouts(monkeypatch)
    write_binary(tmp_path / "data", "cifar10")
    from minicon.methods.simclr import SimCLR

    original, calls = SimCLR.training_step, []

    def training_step(self, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    monkeypatch.setattr(SimCLR, "training_step", training_step)
    toml = tmp_path / "tiny.toml"
    toml.write_text("knn_train = 8\nknn_test = 4\n")
    code = main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--batch-size", "4",
                 "--widths", "4", "8", "--epochs", "1", "--config", str(toml)])
    assert code == 130
    err = capsys.readouterr().err
    assert "checkpoint saved" not in err and "No checkpoint exists yet" in err and "--resume" not in err


# checkpoints that do not fit

def test_a_corrupt_last_npz_is_one_line_and_keeps_the_run(tmp_path):
    make(tmp_path).fit()
    path = tmp_path / "run" / "last.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    logs = (tmp_path / "run" / "steps.jsonl").read_bytes()
    with pytest.raises(ValueError, match=r"last.npz: not a readable minicon checkpoint") as info:
        make(tmp_path, resume=True)
    assert "\n" not in str(info.value)
    assert (tmp_path / "run" / "steps.jsonl").read_bytes() == logs  # nothing truncated


@pytest.mark.parametrize("missing", ["model", "step"])
def test_a_checkpoint_missing_model_or_step_is_one_line(tmp_path, missing):
    make(tmp_path).fit()
    path = tmp_path / "run" / "last.npz"
    state = load_checkpoint(path)
    del state[missing]
    save_checkpoint(state, path)
    with pytest.raises(ConfigError, match=rf"last.npz is not a training checkpoint: it has no {missing} "):
        make(tmp_path, resume=True)


def test_a_checkpoint_of_another_model_is_a_short_line(tmp_path):
    make(tmp_path).fit()
    run = tmp_path / "run"
    values = json.loads((run / "config.json").read_text())
    values["widths"] = [8, 16]  # config.json edited after the run
    (run / "config.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=r"last.npz does not fit the run that .*config.json describes "
                                          r"\(was it edited\?\)") as info:
        make(tmp_path, resume=True, widths=[8, 16])
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


# bad settings, before any data is read

@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=1), "batch_size must be at least 2"),
    (dict(temperature=0.0), "temperature must be > 0, got 0.0"),
    (dict(temperature=-0.1), "temperature must be > 0, got -0.1"),
    (dict(temperature=float("nan")), "temperature must be a finite number, got nan"),
    (dict(lr=float("nan")), "lr must be a finite number, got nan"),
    (dict(lr=0.0), "lr must be > 0, got 0.0"),
    (dict(lr=-1e-3), "lr must be > 0, got -0.001"),
    (dict(knn_test=1), "knn_test must be at least 2"),
])
def test_bad_settings_are_refused_before_the_data_is_read(tmp_path, overrides, message):
    config = tiny_config(data_dir=str(tmp_path / "nowhere"), **overrides)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Trainer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_batch_larger_than_the_data_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"--batch-size 128 is larger than the 64 training images"):
        make(tmp_path, batch_size=128)
    with pytest.raises(ConfigError, match=r"train_subset \(16\) must hold at least one batch \(32\)"):
        make(tmp_path, batch_size=32, train_subset=16)
    assert not (tmp_path / "run" / "config.json").exists()


def test_the_monitor_needs_two_test_images(tmp_path):
    with pytest.raises(ConfigError, match=r"the monitor needs at least 2 test images \(knn_test = 16, 1 given\)"):
        Trainer(tiny_config(), tmp_path / "run", progress=False, train_data=tiny_data(64, 0),
                test_data=tiny_data(1, 1))


# collapse

def test_a_collapsed_run_warns_and_a_healthy_one_does_not(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        make(tmp_path, "healthy").fit()
    with pytest.warns(CollapseWarning, match=r"epoch \d: the embeddings have collapsed to one point "
                                             r"\(embedding std 0,.*learning rate 1e\+10 is likely too high"):
        with np.errstate(over="ignore", invalid="ignore"):
            make(tmp_path, "collapsed", lr=1e10).fit()
    epochs = read(tmp_path / "collapsed" / "epochs.jsonl")
    assert epochs[-1]["loss"] == pytest.approx(np.log(2 * 16 - 1), abs=1e-3)  # NT-Xent at chance: ln(2N−1)


def test_minicon_train_prints_the_collapse_warning_as_one_line(tmp_path, monkeypatch, capsys):
    shrink_layouts(monkeypatch)
    write_binary(tmp_path / "data", "cifar10")
    toml = tmp_path / "tiny.toml"
    toml.write_text("knn_train = 8\nknn_test = 4\n")
    with np.errstate(over="ignore", invalid="ignore"):
        code = main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--batch-size",
                     "4", "--widths", "4", "8", "--epochs", "1", "--lr", "1e10", "--config", str(toml)])
    assert code == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("minicon: warning: epoch 1: the embeddings have collapsed") for line in lines)
