"""The resolved configuration of a training run, its presets and its checks.

A run is fully described by one :class:`TrainConfig`; it is written to the
run folder as ``config.json`` so that ``--resume``, ``minicon eval`` and
``minicon plot`` rebuild exactly the same model.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_atomic

METHODS = ("simclr", "moco", "clip", "simsiam", "byol", "supcon")  # as minicon.methods.METHODS
ENCODERS = ("convnet", "resnet18")
OPTIMIZERS = ("adam", "adamw", "sgd", "lars")


class ConfigError(ValueError):
    """A configuration the user can fix; the message is one line."""


@dataclass
class TrainConfig:
    """Everything a run depends on.

    The defaults are the laptop preset of a bare ``minicon train``: SimCLR
    (τ = 0.2, Adam at lr 2e-3) with a ConvNet 32-64-128-1024, 8 epochs of
    24×24 views, about half an hour on two CPU cores (benchmarks/RESULTS.md:
    linear probe 70.6% and 70.4%, kNN 60.0% and 60.1%, for two seeds). At
    equal time, smaller views and more epochs beat 32×32 views (64.0%
    against 61.3% with the 256-d ConvNet).

    Attributes
    ----------
    method, encoder : str
        One of :data:`METHODS` and :data:`ENCODERS`.
    epochs : int
        Passes over the (possibly subsampled) training set.
    batch_size : int
        Images per step (each gives two views for SimCLR and MoCo).
    lr : float or None
        Peak learning rate, reached at the end of warmup; None takes the
        method's preset (SimCLR 2e-3, MoCo and CLIP 1e-3; see
        :func:`method_defaults`).
    optimizer : str
        One of :data:`OPTIMIZERS`.
    weight_decay : float
        Decoupled for AdamW, L2 otherwise; never on biases and BN parameters.
    warmup_epochs : float
        Linear warmup length, then cosine decay to 0 at the last step.
    temperature : float or None
        τ of the loss; None takes the method's preset (SimCLR 0.2, MoCo 0.1,
        CLIP's learnable scale starts at 1/0.07; see :func:`method_defaults`).
    widths : list of int
        Channel widths of the ConvNet encoder (preset 32-64-128-1024: the
        last block at 1024 instead of the ``ConvNet`` default 256 gives a
        probe four times the features. It works on 3×3 maps, so it is cheap:
        the preset's 8 epochs take as long as 10 at 512, and reach a linear
        probe of 69.7% / 69.3% (at lr 1e-3) against 67.9% for 10 epochs at 512 and
        64.9% / 65.4% at 256. The random encoder's floor rises more than
        that: 55.9% at 1024, 53.5% at 512, 49.2% at 256; benchmarks/RESULTS.md).
    crop_scale : float or None
        Smallest crop area of RandomResizedCrop; None takes the method's
        default (SimCLR and CLIP 0.08, MoCo v2 0.2).
    crop_size : int
        Side in pixels of the augmented training views (RandomResizedCrop's
        output), at least 8 (default 24). Below 32 every step is cheaper (24
        pixels: 0.56× the pixels); the encoder's global pooling takes any size, and
        evaluation always sees the whole 32×32 test images. Training smaller
        than testing suits random resized crops, which enlarge objects
        (Touvron et al., "Fixing the train-test resolution discrepancy",
        NeurIPS 2019, arXiv:1906.06423).
    train_subset : int or None
        Train on the first this-many images of a fixed shuffle (None: all).
    knn_every : int
        Epochs between kNN-monitor evaluations (0: only at the end).
    knn_train, knn_test : int
        Images of the train (memory bank) and test sets the monitor uses.
    seed : int
        Seeds model init, data order and augmentations.
    backend : str
        ``numpy`` or ``cupy``.
    data_dir : str or None
        CIFAR folder (None: ``MINICON_DATA_DIR`` or the cache).
    queue_size, moco_momentum : int, float
        MoCo's queue length K and key-encoder EMA momentum.
    ranks : int
        P, the processes of a data-parallel run (``mpirun -n P minicon
        train --distributed``); each takes batch_size / P images of every
        batch. 1: one process.
    """

    method: str = "simclr"
    encoder: str = "convnet"
    epochs: int = 8
    batch_size: int = 256
    lr: float | None = None
    optimizer: str = "adam"
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    temperature: float | None = None
    widths: list = field(default_factory=lambda: [32, 64, 128, 1024])
    crop_scale: float | None = None
    crop_size: int = 24
    train_subset: int | None = None
    knn_every: int = 1
    knn_train: int = 10_000
    knn_test: int = 2_000
    seed: int = 0
    backend: str = "numpy"
    data_dir: str | None = None
    queue_size: int = 4096
    moco_momentum: float = 0.99
    ranks: int = 1

    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` (one line, naming the field) for impossible settings."""
        self._check_types()
        choices = {"method": METHODS, "encoder": ENCODERS, "optimizer": OPTIMIZERS,
                   "backend": ("numpy", "cupy")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        positive = ("epochs", "batch_size", "lr", "knn_train", "knn_test", "queue_size", "ranks")
        for name in positive:
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError(
                f"batch_size must be at least 2 (a contrastive batch needs pairs), got {self.batch_size}"
            )
        if self.batch_size % self.ranks:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by the {self.ranks} ranks: "
                              "each rank takes batch_size / ranks images of every batch")
        if self.knn_test < 2:
            raise ConfigError(f"knn_test must be at least 2 (the monitor's diagnostics compare test images "
                              f"with each other), got {self.knn_test}")
        if self.temperature is not None and not self.temperature > 0:  # finite: _check_types
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.temperature is not None and self.method in ("simsiam", "byol"):
            raise ConfigError(f"{self.method} has no temperature (its loss is a cosine, no softmax)")
        if self.crop_scale is not None and not 0 < self.crop_scale <= 1:
            raise ConfigError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.crop_size < 8:
            raise ConfigError(f"crop_size must be an int of at least 8 pixels, got {self.crop_size!r}")
        if not self.widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise ConfigError(f"widths must be a non-empty list of positive ints, got {self.widths!r}")
        self.widths = list(self.widths)  # as config.json stores it, so a resumed run compares equal
        smallest = 2 ** (len(self.widths) - 1)  # each of the ConvNet's max-pools halves the side
        if self.encoder == "convnet" and self.crop_size < smallest:
            raise ConfigError(f"crop_size {self.crop_size} is too small for a ConvNet of {len(self.widths)} "
                              f"blocks: its views need at least {smallest} pixels")
        if self.warmup_epochs < 0 or self.weight_decay < 0 or self.knn_every < 0:
            raise ConfigError("warmup_epochs, weight_decay and knn_every must be >= 0")
        if not 0 <= self.moco_momentum < 1:
            raise ConfigError(f"moco_momentum must be in [0, 1), got {self.moco_momentum}")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ConfigError(
                f"train_subset ({self.train_subset}) must hold at least one batch ({self.batch_size})"
            )
        return self

    def _check_types(self) -> None:
        """Every field of the type its annotation names (a TOML file can hold anything).

        Booleans are not numbers here, ints pass as floats, and float fields must
        be finite (an infinite learning rate or τ would fail only mid-run).
        """
        kinds = {"int": ((int,), "an int"), "float": ((int, float), "a finite number"),
                 "str": ((str,), "a string"), "list": ((list, tuple), "a list")}
        for f in dataclasses.fields(self):
            annotation = str(f.type)  # a string such as "float | None" (postponed annotations)
            value = getattr(self, f.name)
            if value is None and annotation.endswith("| None"):
                continue
            types, expected = kinds[annotation.split(" | ")[0]]
            ok = isinstance(value, types) and not isinstance(value, bool)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(f"{f.name} must be {expected}, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict (``config.json`` or a TOML file), naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)

    @classmethod
    def from_run(cls, path) -> "TrainConfig":
        """The validated config of a run folder's ``config.json``.

        Runs saved before ``crop_size`` existed trained on 32×32 views, so a
        file without the key reads as 32, not as today's default.

        Raises
        ------
        ConfigError
            If the file cannot be read, is not a JSON object of known
            settings, or fails :meth:`validate`; one line naming the file.
        """
        try:
            values = json.loads(Path(path).read_text())
            if not isinstance(values, dict):
                raise ConfigError("expected a JSON object of settings")
            values.setdefault("crop_size", 32)
            return cls.from_dict(values).validate()  # an edited file is named here, not blamed on the flags
        except (ConfigError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ConfigError(f"{path} is not a minicon run config: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None

    def differences(self, other: "TrainConfig") -> list:
        """Names of the fields in which two configs differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if a[k] != b[k]]


def load_toml(path) -> dict:
    """Read a TOML config file (``[train]`` table or top-level keys) into a dict.

    Raises
    ------
    ConfigError
        If the file is missing or not valid TOML; names the file.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if "train" not in values:
        return values
    if not isinstance(values["train"], dict) or len(values) > 1:
        raise ConfigError(f"config file {path}: put the settings either all in a [train] table "
                          "or all at the top level")
    return values["train"]


def method_defaults(method: str) -> dict:
    """Per-method defaults applied where the user gave no value (sources in each method).

    SimCLR's τ is 0.2 here, not the 0.5 of its paper's long CIFAR-10 runs
    (appendix B.9) that ``SimCLR`` itself defaults to: on the 10-epoch
    runs, two seeds gave 58.5% and 58.1% kNN, 64.9% and 65.4% linear probe,
    against 56.1% / 64.0% with τ = 0.5 (one seed; 56.3% / 64.6% re-run at
    one BLAS thread), all with the 256-d ConvNet (benchmarks/RESULTS.md).
    SimCLR's peak learning rate is 2e-3: on the 8-epoch 1024-d preset, two
    seeds gave 70.6% and 70.4% linear probe against 70.1% and 69.3% at
    1e-3 (same seeds, one BLAS thread). MoCo and CLIP keep 1e-3, the rate
    of their measured short runs. SimSiam, BYOL and SupCon take SimCLR's
    crops and 1e-3, untuned (SupCon its paper's τ = 0.1); only short runs of
    them have been made (lesson 10).
    """
    return {
        "simclr": {"temperature": 0.2, "crop_scale": 0.08, "lr": 2e-3},
        "moco": {"temperature": 0.1, "crop_scale": 0.2, "lr": 1e-3},
        "clip": {"temperature": None, "crop_scale": 0.08, "lr": 1e-3},
        "simsiam": {"temperature": None, "crop_scale": 0.08, "lr": 1e-3},
        "byol": {"temperature": None, "crop_scale": 0.08, "lr": 1e-3},
        "supcon": {"temperature": 0.1, "crop_scale": 0.08, "lr": 1e-3},
    }[method]


def save_json(config: TrainConfig, path) -> None:
    """Write ``config`` as sorted, indented JSON to ``path``, atomically (a crash keeps the old file)."""
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))
