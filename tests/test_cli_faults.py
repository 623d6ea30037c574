"""`minicon eval` and `minicon plot` faults (issues 17 part 5 and 20): one line, nothing half-done."""

import json

import pytest

from minicon.cli import main
from minicon.train import Trainer
from minicon.train.evaluation import evaluate_run
from minicon.train.config import ConfigError

from .cifar_fixtures import shrink_layouts, write_binary
from .test_train import tiny_config


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A finished tiny run on a 15-image CIFAR-10 folder written to disk."""
    shrink_layouts(monkeypatch)  # 15 train and 4 test images
    monkeypatch.delenv("MINICON_DATA_DIR", raising=False)  # --resume would take it over the run's own folder
    data = tmp_path / "data"
    write_binary(data, "cifar10")
    config = tiny_config(batch_size=4, knn_train=8, knn_test=4, data_dir=str(data), epochs=1)
    Trainer(config, tmp_path / "run", progress=False).fit()
    return tmp_path / "run"


def test_a_non_positive_subset_is_refused(run, capsys):
    for value in ("-5", "0"):
        with pytest.raises(SystemExit) as stop:
            main(["eval", str(run), "--subset", value])
        assert stop.value.code == 2
        assert f"--subset: must be a positive whole number, got {int(value)}" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--subset must be a positive number of images, got -5"):
        evaluate_run(run, subset=-5)
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("flag", ["--n-images", "--n-views"])
def test_augment_grid_counts_must_be_positive(tmp_path, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["augment-grid", flag, "0", "--out", str(tmp_path / "g.png")])
    assert stop.value.code == 2 and f"{flag}: must be a positive whole number, got 0" in capsys.readouterr().err


def test_an_unwritable_eval_json_is_named_before_any_work(run, capsys, monkeypatch):
    (run / "eval.json").mkdir()  # cannot be replaced by a file, even by root
    calls = []
    monkeypatch.setattr("minicon.train.evaluation.extract_features", lambda *a, **k: calls.append(1))
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"minicon: error: {run / 'eval.json'} cannot be written (it is not a file); nothing was evaluated"
    assert calls == []  # refused before the features were computed


def test_eval_writes_eval_json_atomically(run, capsys):
    assert main(["eval", str(run), "--probe", "knn"]) == 0
    assert "| trained encoder |" in capsys.readouterr().out
    assert json.loads((run / "eval-knn.json").read_text())["rows"][0]["features"] == "trained encoder"
    assert not (run / "eval.json").exists()  # a kNN-only look does not take the full result's name
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]  # no temp file left behind


def test_eval_and_plot_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    for command in ("eval", "plot"):
        assert main([command, str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("minicon: error: ") and "\n" not in err and str(tmp_path) in err


def test_plot_on_a_run_with_no_steps_is_one_line(run, capsys):
    (run / "steps.jsonl").write_text("")
    assert main(["plot", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (f"minicon: error: {run} has no logged step (steps.jsonl missing "
                                               "or empty): not a training run, or no step finished yet")


def test_eval_on_a_folder_that_does_not_exist_says_so(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == (f"minicon: error: {tmp_path / 'nothing'} is not a folder: "
                                               "expected a run folder made by minicon train")


def test_one_epoch_is_one_epoch(run, capsys):
    assert main(["eval", str(run), "--probe", "knn"]) == 0
    assert ", 1 epoch (" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "has already finished its 1 epoch; nothing to resume" in capsys.readouterr().out


def test_a_diverging_run_ends_on_a_line_of_its_own_without_numpy_warnings(run, tmp_path, capsys):
    data = json.loads((run / "config.json").read_text())["data_dir"]
    assert main(["train", "--out", str(tmp_path / "nan"), "--data-dir", data, "--lr", "1e30", "--optimizer", "sgd",
                 "--batch-size", "4", "--widths", "4", "8", "--crop-size", "16", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "RuntimeWarning" not in err and "encountered" not in err
    assert [line for line in err.splitlines() if "minicon: error: loss became" in line][0].startswith("minicon:")


def test_a_train_subset_larger_than_the_data_is_named(run, tmp_path, capsys):
    data = json.loads((run / "config.json").read_text())["data_dir"]
    assert main(["train", "--out", str(tmp_path / "big"), "--data-dir", data, "--train-subset", "100",
                 "--batch-size", "4"]) == 2
    assert capsys.readouterr().err.strip() == ("minicon: error: --train-subset 100 is larger than the 15 "
                                               "training images")
    assert not (tmp_path / "big" / "config.json").exists()


def test_eval_without_a_best_checkpoint_is_one_line(run, capsys):
    (run / "best.npz").unlink(missing_ok=True)
    assert main(["eval", str(run), "--checkpoint", "best"]) == 2
    assert capsys.readouterr().err.strip() == f"minicon: error: {run} has no best.npz checkpoint yet"
