"""The main job end to end on real CIFAR-10: train, eval, plot through the CLI.

Needs the real data (``MINICON_DATA_DIR``, or ``../shared/data`` beside the
repository); skipped with the reason where it is absent.
"""

import json

import pytest

from minicon.cli import main
from minicon.train.config import TrainConfig, method_defaults

from .cifar_fixtures import real_cifar10_dir


@pytest.fixture(scope="module")
def data_dir():
    folder = real_cifar10_dir()
    if folder is None:
        pytest.skip("real CIFAR-10 not found: set MINICON_DATA_DIR (e.g. ../shared/data)")
    return str(folder)


def test_train_eval_plot_on_real_cifar10(tmp_path, data_dir, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text("[train]\nwidths = [8, 16]\nknn_train = 512\nknn_test = 256\nwarmup_epochs = 0.5\n")
    run = tmp_path / "run"
    args = ["train", "--train-subset", "512", "--epochs", "2", "--batch-size", "128",
            "--data-dir", data_dir, "--out", str(run), "--config", str(config), "--crop-size", "20",
            "--widths", "8", "12"]
    assert main(args + ["--crop-scale", "0.3"]) == 0
    out = capsys.readouterr().out
    assert f"into {run}" in out and "kNN top-1" in out
    resolved = json.loads((run / "config.json").read_text())
    assert (resolved["crop_scale"], resolved["crop_size"]) == (0.3, 20)  # the flags beat the defaults
    assert resolved["widths"] == [8, 12]  # and the TOML file
    assert main(args + ["--crop-scale", "0.3"]) == 2  # the folder now holds this run
    assert "already holds this run" in capsys.readouterr().err
    assert main(args + ["--crop-scale", "0.3", "--resume"]) == 0  # finished: nothing to do, no traceback
    assert "already finished its 2 epochs; nothing to resume" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--resume"]) == 0  # no flags: the run's own config, not the defaults
    assert "already finished its 2 epochs" in capsys.readouterr().out

    assert main(["eval", str(run), "--subset", "1000", "--baselines"]) == 0
    table = capsys.readouterr().out
    for row in ("trained encoder", "random encoder", "raw pixels"):
        assert f"| {row} |" in table
    report = json.loads((run / "eval-subset-1000.json").read_text())  # a quick look keeps its own file
    assert all(0 <= r["linear_top1"] <= 1 and 0 <= r["knn_top1"] <= 1 for r in report["rows"])
    pixels = next(r for r in report["rows"] if r["features"] == "raw pixels")
    assert pixels["linear_top1"] > 0.15  # far above chance (0.10) even on 1,000 images

    assert main(["plot", str(run)]) == 0
    for name in ("curves.png", "similarity.png", "augmentations.png"):
        assert (run / name).stat().st_size > 10_000


def test_user_mistakes_are_one_line(tmp_path, capsys):
    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "minicon: error: epochs must be > 0, got 0"
    assert main(["train", "--crop-scale", "1.5", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "minicon: error: crop_scale must be in (0, 1], got 1.5"
    assert main(["train", "--crop-size", "4", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "minicon: error: crop_size must be an int of at least 8 pixels, got 4"
    assert main(["train", "--widths", "32", "0", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == ("minicon: error: widths must be a non-empty list of positive ints, "
                                               "got [32, 0]")
    scalar = tmp_path / "scalar.toml"
    scalar.write_text("widths = 512\n")
    assert main(["train", "--config", str(scalar), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "minicon: error: widths must be a list, got 512"
    for text, message in (('temperature = "hot"', "temperature must be a finite number, got 'hot'"),
                          ("epochs = true", "epochs must be an int, got True"),
                          ("epochs = 1.5", "epochs must be an int, got 1.5"),
                          ("lr = inf", "lr must be a finite number, got inf"),
                          ("train = 5", f"config file {scalar}: put the settings either all in a [train] "
                                        "table or all at the top level")):
        scalar.write_text(text + "\n")
        assert main(["train", "--config", str(scalar), "--out", str(tmp_path / "r")]) == 2
        assert capsys.readouterr().err.strip() == f"minicon: error: {message}"
    scalar.write_text('method = "dino"\n')  # read for the method's defaults before any other check
    assert main(["train", "--config", str(scalar), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == ("minicon: error: method must be one of simclr, moco, clip, "
                                               "simsiam, byol, supcon, got 'dino'")
    assert main(["train", "--temperature", "inf", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "minicon: error: temperature must be a finite number, got inf"
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "nothing is not a folder: expected a run folder" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "holds no run to resume" in capsys.readouterr().err


def test_widths_with_a_resnet_and_a_split_as_root_are_one_line(tmp_path, capsys):
    assert main(["train", "--encoder", "resnet18", "--widths", "8", "16", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == ("minicon: error: --widths sets the ConvNet's blocks; "
                                               "--encoder resnet18 has fixed widths")
    assert not (tmp_path / "r").exists()
    from minicon.data import load_cifar10

    with pytest.raises(ValueError, match=r"root 'test' names a split, not a folder: pass split='test'"):
        load_cifar10("test")


def test_train_help_names_the_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    preset = TrainConfig()
    for default in (f"(default: {preset.epochs})", f"(default: {preset.batch_size})",
                    f"(default: SimCLR {method_defaults('simclr')['lr']:g}, "
                    f"MoCo {method_defaults('moco')['lr']:g}, CLIP {method_defaults('clip')['lr']:g}, "
                    f"SimSiam/BYOL/SupCon {method_defaults('supcon')['lr']:g})",
                    f"default: {' '.join(map(str, preset.widths))})", f"default {preset.crop_size};",
                    f"SimCLR {method_defaults('simclr')['temperature']}, "
                    f"MoCo {method_defaults('moco')['temperature']}"):
        assert default in text


def test_resume_reads_the_runs_own_settings_not_the_defaults(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    saved = TrainConfig(widths=[8, 16], temperature=0.5, crop_scale=0.3, epochs=2, lr=1e-3)  # as a Trainer writes it
    (run / "config.json").write_text(json.dumps(saved.to_dict()))
    assert main(["train", "--out", str(run), "--resume"]) == 2  # stops at the missing checkpoint, before any data
    assert capsys.readouterr().err.strip() == (f"minicon: error: --resume: {run} has no checkpoint (last.npz) yet: "
                                               "the run stopped before the end of its first epoch; start it afresh "
                                               "without --resume")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2  # a flag that differs still counts
    assert "already holds a different run (differs in epochs)" in capsys.readouterr().err
