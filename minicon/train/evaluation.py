"""Evaluating and plotting a finished run: ``minicon eval`` and ``minicon plot``.

Both rebuild the model from the run's ``config.json`` and a checkpoint, so
they work on any run folder, including one copied from another machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy

from .. import backend
from ..augment import ToFloat, TwoViews, simclr_cifar
from ..data import load_cifar10
from ..evaluate import extract_features, knn_accuracy, linear_probe, raw_pixels, zero_shot_accuracy
from ..files import check_writable, write_atomic
from .checkpoint import load_checkpoint
from .config import ConfigError, TrainConfig
from .trainer import build_model, view_transform
from .trainer import subset as subset_of


def load_run(run_dir, checkpoint: str = "last", class_names=None, data_dir=None):
    """A run's config and its model with ``checkpoint`` loaded, on the run's backend (which it switches to).

    Parameters
    ----------
    run_dir : str or Path
        A run folder of ``minicon train``.
    checkpoint : {"last", "best"}
    class_names : list of str, optional
        What the model is built with (CLIP makes its vocabulary from them);
        default CIFAR-10's, read from the test split in ``data_dir`` (else
        the run's data folder, else ``MINICON_DATA_DIR``).
    data_dir : str, optional

    Raises
    ------
    ConfigError
        One line naming the folder: not a folder, no ``config.json``, or no
        such checkpoint (a corrupt config or checkpoint is named by its reader).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder: expected a run folder made by minicon train")
    if not config_path.exists():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json)")
    config = TrainConfig.from_run(config_path)
    path = run_dir / f"{checkpoint}.npz"
    if not path.exists():
        raise ConfigError(f"{run_dir} has no {checkpoint}.npz checkpoint yet")
    backend.set_backend(config.backend)
    if class_names is None:
        class_names = load_cifar10(data_dir or config.data_dir, "test", download=False)[2]
    model = build_model(config, list(class_names))
    model.load_state_dict(load_checkpoint(path)["model"])
    return config, model


def _restore(run_dir: Path, checkpoint: str = "last", data_dir=None):
    """The run's config, its model loaded from ``checkpoint``, and the CIFAR-10 test split."""
    config, model = load_run(run_dir, checkpoint, data_dir=data_dir)
    return config, model, load_cifar10(data_dir or config.data_dir, "test", download=False)


def _check_writable(path: Path) -> None:
    """Fail before minutes of evaluation, not after, when ``path`` cannot be written."""
    why = check_writable(path)
    if why:
        raise ConfigError(f"{path} cannot be written ({why}); nothing was evaluated")


def report_name(probe: str = "all", checkpoint: str = "last", subset: int | None = None) -> str:
    """``eval.json`` for the full evaluation of ``last.npz``; otherwise ``eval-`` + what differs.

    >>> report_name(), report_name("knn", "last", 500), report_name(checkpoint="best")
    ('eval.json', 'eval-subset-500-knn.json', 'eval-best.json')
    """
    parts = ([f"subset-{subset}"] if subset is not None else []) + ([probe] if probe != "all" else []) \
        + (["best"] if checkpoint != "last" else [])
    return "-".join(["eval", *parts]) + ".json"


def evaluate_run(run_dir, probe: str = "all", baselines: bool = False, data_dir=None,
                 checkpoint: str = "last", subset: int | None = None) -> dict:
    """kNN (k = 200, τ = 0.1) and linear-probe top-1 on the full CIFAR-10 test set.

    Parameters
    ----------
    run_dir : str or Path
    probe : {"all", "knn", "linear"}
    baselines : bool
        Also evaluate raw pixels and a randomly initialized encoder of the
        same architecture, with the same probes.
    data_dir : str, optional
        Overrides the run's data folder.
    checkpoint : {"last", "best"}
    subset : int, optional
        Use only this many train and this many test images (a fixed random
        choice) for a quick look; None: all 50,000 and 10,000.

    Returns
    -------
    dict
        ``{"run", "method", "encoder", "epochs", "rows": [{"features", "knn_top1",
        "knn_top5", "linear_top1", "seconds"}...]}``; also written (atomically) to
        ``RUN/eval.json`` for the full evaluation, or to a file named after what
        differs (``eval-subset-500-knn.json``: see :func:`report_name`), so a quick
        look never replaces a full result.

    Raises
    ------
    ConfigError
        If ``subset`` is not a positive count, ``run_dir`` is not a run, or
        ``RUN/eval.json`` cannot be written (checked before any work).
    """
    run_dir = Path(run_dir)
    if subset is not None and subset < 1:
        raise ConfigError(f"--subset must be a positive number of images, got {subset}")
    config, model, (test_x, test_y, names) = _restore(run_dir, checkpoint, data_dir)
    out = run_dir / report_name(probe, checkpoint, subset)
    _check_writable(out)
    train_x, train_y, _ = load_cifar10(data_dir or config.data_dir, "train", download=False)
    train_x, train_y = subset_of(train_x, train_y, subset, config.seed + 1)
    test_x, test_y = subset_of(test_x, test_y, subset, config.seed + 2)
    to_float = ToFloat()
    candidates = [("trained encoder", lambda x: extract_features(model, x, transform=to_float))]
    if baselines:
        random_model = build_model(config, list(names))
        candidates += [
            ("random encoder", lambda x: extract_features(random_model, x, transform=to_float)),
            ("raw pixels", lambda x: raw_pixels(x, transform=to_float)),
        ]
    rows = []
    for label, features in candidates:
        start = time.perf_counter()
        train_f, test_f = features(train_x), features(test_x)
        row = {"features": label}
        if probe in ("all", "knn"):
            knn = knn_accuracy(train_f, train_y, test_f, test_y, k=min(200, len(train_y)), temperature=0.1)
            row.update(knn_top1=knn["top1"], knn_top5=knn["top5"])
        if probe in ("all", "linear"):
            probe_rng = numpy.random.default_rng(config.seed)
            row["linear_top1"] = linear_probe(train_f, train_y, test_f, test_y, rng=probe_rng)["top1"]
        if config.method == "clip" and label == "trained encoder":
            row["zero_shot_top1"] = zero_shot_accuracy(model, test_f, test_y)["top1"]
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    report = {"run": str(run_dir), "method": config.method, "encoder": config.encoder,
              "epochs": config.epochs, "checkpoint": checkpoint, "train_images": len(train_y),
              "test_images": len(test_y), "rows": rows}
    write_atomic(out, lambda f: f.write((json.dumps(report, indent=2) + "\n").encode()))
    return report


def epochs_text(count: int) -> str:
    """``"1 epoch"``, ``"8 epochs"``: the phrase every message about a run's length uses."""
    return f"{count} epoch{'s' if count != 1 else ''}"


def format_report(report: dict) -> str:
    """The evaluation as a Markdown table (fractions shown as percentages)."""
    columns = {"knn_top1": "kNN top-1", "knn_top5": "kNN top-5", "linear_top1": "linear probe top-1"}
    if any("zero_shot_top1" in row for row in report["rows"]):
        columns["zero_shot_top1"] = "zero-shot top-1"
    lines = [f"{report['method']} + {report['encoder']}, {epochs_text(report['epochs'])} "
             f"({report['run']}, {report['checkpoint']} checkpoint); {report['train_images']} train "
             f"and {report['test_images']} test images of CIFAR-10:", "",
             "| features | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in report["rows"]:
        cells = [f"{100 * row[k]:.1f}%" if k in row else "—" for k in columns]
        lines.append(f"| {row['features']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_run(run_dir: Path, data_dir=None) -> list:
    """Save ``curves.png``, ``similarity.png`` and ``augmentations.png`` into the run folder.

    The heatmap compares two standard SimCLR views (32×32) of test images;
    the grid shows the run's own training views (its crop size and scale).
    """
    from ..plots import augmentation_grid, similarity_heatmap, training_curves

    config, model, (test_x, test_y, names) = _restore(run_dir, data_dir=data_dir)
    saved = []
    fig = training_curves(run_dir)
    fig.savefig(run_dir / "curves.png", dpi=120)
    saved.append(run_dir / "curves.png")
    v1, v2 = TwoViews(simclr_cifar())(test_x[:32], generator=numpy.random.default_rng(0))
    z1, z2 = (extract_features(model, v, projected=True) for v in (v1, v2))
    similarity_heatmap(z1, z2).savefig(run_dir / "similarity.png", dpi=120)
    saved.append(run_dir / "similarity.png")
    augmentation_grid(test_x, view_transform(config), labels=test_y, class_names=names).savefig(
        run_dir / "augmentations.png", dpi=120)
    saved.append(run_dir / "augmentations.png")
    return saved
