"""The training loop shared by every method: data, steps, monitor, checkpoints.

One :class:`Trainer` runs any method that has ``training_step(batch) ->
loss``. It owns the run folder::

    RUN/config.json      the resolved TrainConfig
    RUN/steps.jsonl      one line per step: step, epoch, loss, lr, images/s (+ CLIP's logit scale)
    RUN/epochs.jsonl     one line per epoch: mean loss, kNN top-1/top-5, diagnostics of z
    RUN/last.npz         checkpoint after the latest finished step (atomic)
    RUN/best.npz         checkpoint of the epoch with the best kNN top-1

Resuming restores the model, optimizer, schedule position, queue, host RNG
and data position, so a resumed run reproduces the losses of an
uninterrupted one exactly (on one backend).
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from pathlib import Path

import numpy

from .. import backend
from ..augment import ToFloat, TwoViews, simclr_cifar
from ..data import DataLoader, data_dir, load_cifar10
from ..evaluate import (
    alignment,
    effective_rank,
    embedding_std,
    extract_features,
    knn_accuracy,
    positive_negative_similarity,
    uniformity,
)
from ..methods import build_method
from ..nn import ConvNet, resnet18
from ..optim import SGD, LARS, Adam, AdamW, WarmupCosine
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, method_defaults, save_json


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message says where and what is kept."""


def build_encoder(config: TrainConfig):
    if config.encoder == "convnet":
        return ConvNet(widths=tuple(config.widths))
    return resnet18()


def build_model(config: TrainConfig, class_names: list):
    """The method module for ``config`` (seeded by ``config.seed``)."""
    backend.manual_seed(config.seed)
    kwargs = {}
    if config.temperature is not None:
        kwargs["temperature"] = config.temperature
    if config.method == "moco":
        kwargs.update(queue_size=config.queue_size, momentum=config.moco_momentum)
    if config.method == "clip":
        kwargs["class_names"] = class_names
    return build_method(config.method, build_encoder(config), **kwargs)


def build_optimizer(config: TrainConfig, params):
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return LARS(params, lr=config.lr, weight_decay=config.weight_decay)


def view_transform(config: TrainConfig):
    """One augmented view of a run's recipe: SimCLR's CIFAR augmentation at the run's crop size and scale.

    A ``crop_scale`` of None (a config not yet resolved, or an old run's)
    takes the method's default. With MoCo's default 0.2 it is MoCo v2's aug+
    without blur (:func:`minicon.augment.moco_v2_cifar`: the same steps, flip
    placed differently, same distribution).

    Returns
    -------
    Compose
        (N, 3, 32, 32) uint8 or float → (N, 3, crop_size, crop_size) float32 in [0, 1].
    """
    crop_scale = config.crop_scale or method_defaults(config.method)["crop_scale"]
    return simclr_cifar(size=config.crop_size, crop_scale=crop_scale)


def train_transform(config: TrainConfig):
    """The augmentation of one training batch: two :func:`view_transform` views (one for CLIP)."""
    views = view_transform(config)
    return views if config.method == "clip" else TwoViews(views)


def subset(images, labels, count, seed):
    """The first ``count`` images of a fixed shuffle (all of them when count is None)."""
    if count is None or count >= len(images):
        return images, labels
    order = numpy.random.default_rng(seed).permutation(len(images))[:count]
    return images[order], labels[order]


class Trainer:
    """Train ``config.method`` on CIFAR-10 (or given arrays) into ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
    run_dir : str or Path
        The run folder; created if missing.
    resume : bool
        Continue the run in ``run_dir`` from its ``last.npz``.
    train_data, test_data : tuple, optional
        ``(images uint8 N×3×32×32, labels int64, class_names)``; default:
        CIFAR-10 from ``config.data_dir``.
    progress : bool
        Show a tqdm progress bar.

    Constructing a Trainer calls ``minicon.set_backend(config.backend)``: the
    backend stays switched for the rest of the process (as in a notebook that
    trains on CuPy and then evaluates), until set again.

    Raises
    ------
    ConfigError
        If ``run_dir`` already holds a different run, or holds a run and
        ``resume`` is False, or ``resume`` is True and there is nothing to resume.
    """

    def __init__(self, config: TrainConfig, run_dir, *, resume: bool = False, train_data=None,
                 test_data=None, progress: bool = True):
        config.validate()  # before the method's defaults are looked up by its name
        for key, value in method_defaults(config.method).items():
            if getattr(config, key) is None:
                setattr(config, key, value)
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self._check_run_dir(resume)
        backend.set_backend(config.backend)
        try:
            if train_data is None:
                train_data = load_cifar10(config.data_dir, "train")
            if test_data is None:
                test_data = load_cifar10(config.data_dir, "test")
        except OSError as exc:  # requests' network errors are OSErrors too
            raise ConfigError(
                f"CIFAR-10 is not in {data_dir(config.data_dir)} and could not be downloaded "
                f"({type(exc).__name__}); offline, set MINICON_DATA_DIR (or --data-dir) to a folder "
                "holding cifar-10-batches-bin, e.g. ../shared/data"
            ) from None
        images, labels, self.class_names = train_data
        self.train_images, self.train_labels = subset(images, labels, config.train_subset, config.seed)
        self.test_images, self.test_labels = test_data[0], test_data[1]
        self.model = build_model(config, list(self.class_names))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, params)
        self.loader = DataLoader(self.train_images, self.train_labels, config.batch_size,
                                 seed=config.seed, transform=train_transform(config))
        self.steps_per_epoch = len(self.loader)
        total = config.epochs * self.steps_per_epoch
        warmup = min(int(round(config.warmup_epochs * self.steps_per_epoch)), total - 1)
        self.schedule = WarmupCosine(self.optimizer, total_steps=total, warmup_steps=warmup)
        self.step = 0
        self.best = -math.inf
        if resume:
            self._load(self.run_dir / "last.npz")
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_json(config, self.run_dir / "config.json")

    def _check_run_dir(self, resume: bool) -> None:
        path = self.run_dir / "config.json"
        if not path.exists():
            if resume:
                raise ConfigError(f"--resume: {self.run_dir} holds no run to resume")
            return
        previous = TrainConfig.from_run(path)
        differ = previous.differences(self.config)
        if differ:
            raise ConfigError(
                f"{self.run_dir} already holds a different run (differs in {', '.join(differ)}); "
                "choose another --out"
            )
        if not resume:
            raise ConfigError(f"{self.run_dir} already holds this run; pass --resume to continue it "
                              "or choose another --out")
        if not (self.run_dir / "last.npz").exists():
            raise ConfigError(f"--resume: {self.run_dir} has no checkpoint (last.npz) yet")

    def state(self) -> dict:
        return {
            "format": 1,
            "step": self.step,
            "best": self.best,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "host_rng": backend.host_rng().bit_generator.state,
        }

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        backend.host_rng().bit_generator.state = state["host_rng"]
        self.step, self.best = int(state["step"]), float(state["best"])
        self._truncate_logs()

    def _truncate_logs(self) -> None:
        """Drop log lines written after the checkpoint (a killed run logged steps it lost)."""
        for name in ("steps.jsonl", "epochs.jsonl"):
            path = self.run_dir / name
            if path.exists():
                kept = [line for line in path.read_text().splitlines()
                        if line and json.loads(line)["step"] <= self.step]
                path.write_text("".join(line + "\n" for line in kept))

    def save(self, name: str = "last.npz") -> Path:
        path = self.run_dir / name
        save_checkpoint(self.state(), path)
        return path

    def monitor(self) -> dict:
        """kNN accuracy (encoder features h) on a fixed test subset; collapse diagnostics of the projections z.

        The diagnostics use two standard SimCLR views (32×32, crops of 8–100%)
        of 512 test images whatever the run's own crop settings, so that runs
        compare with each other.
        """
        cfg = self.config
        train_x, train_y = subset(self.train_images, self.train_labels, cfg.knn_train, cfg.seed + 1)
        test_x, test_y = subset(self.test_images, self.test_labels, cfg.knn_test, cfg.seed + 2)
        train_f, test_f = (extract_features(self.model, x, transform=ToFloat()) for x in (train_x, test_x))
        knn = knn_accuracy(train_f, train_y, test_f, test_y, k=min(200, len(train_y)), temperature=0.1)
        result = {f"knn_{name}": value for name, value in knn.items()}
        views = TwoViews(simclr_cifar())(test_x[:512], generator=numpy.random.default_rng(cfg.seed))
        z1, z2 = (backend.to_host(extract_features(self.model, v, projected=True)) for v in views)
        sims = positive_negative_similarity(z1, z2)
        result.update(
            embedding_std=embedding_std(z1), alignment=alignment(z1, z2), uniformity=uniformity(z1),
            effective_rank=effective_rank(z1), positive_similarity=sims["positive"],
            negative_similarity=sims["negative"], feature_dim=int(z1.shape[1]),
        )
        return result

    def fit(self) -> dict:
        """Run the remaining epochs; returns the final monitor result with timing.

        Raises
        ------
        TrainingError
            When the loss becomes NaN or inf (names the step; ``last.npz``
            keeps the last good state).
        KeyboardInterrupt
            After Ctrl-C, once the current step has finished and ``last.npz``
            has been written.
        """
        from tqdm import tqdm

        cfg = self.config
        interrupted = []
        previous_handler = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            if interrupted:  # a second Ctrl-C stops at once
                previous_handler(signum, frame) if callable(previous_handler) else None
                raise KeyboardInterrupt
            interrupted.append(True)

        signal.signal(signal.SIGINT, on_sigint)
        steps_log = open(self.run_dir / "steps.jsonl", "a")
        epochs_log = open(self.run_dir / "epochs.jsonl", "a")
        total_steps = cfg.epochs * self.steps_per_epoch
        started = time.perf_counter()
        result = {}
        try:
            bar = tqdm(total=total_steps, initial=self.step, disable=not self.progress,
                       unit="step", dynamic_ncols=True)
            while self.step < total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                self.loader.set_epoch(epoch, start_batch=first)
                losses = []
                self.model.train()
                tick = time.perf_counter()
                for batch in self.loader:
                    lr = self.optimizer.param_groups[0]["lr"]
                    loss = self.model.training_step(batch)
                    value = float(loss.item())
                    if not math.isfinite(value):
                        raise TrainingError(
                            f"loss became {value} at step {self.step + 1} (epoch {epoch + 1}); stopped. "
                            f"The last good checkpoint is {self.run_dir / 'last.npz'}"
                        )
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    self.schedule.step()
                    self.step += 1
                    now = time.perf_counter()
                    speed = cfg.batch_size / (now - tick)
                    tick = now
                    losses.append(value)
                    steps_log.write(json.dumps({"step": self.step, "epoch": epoch + 1, "loss": value,
                                                "lr": lr, "images_per_s": speed,
                                                **self.model.step_metrics()}) + "\n")
                    bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
                    bar.update()
                    if interrupted:
                        break
                steps_log.flush()
                if interrupted:
                    self.save()
                    raise KeyboardInterrupt
                finished = self.step // self.steps_per_epoch
                record = {"epoch": finished, "step": self.step, "loss": float(numpy.mean(losses)),
                          "wall_s": time.perf_counter() - started}
                if (cfg.knn_every and finished % cfg.knn_every == 0) or self.step == total_steps:
                    result = self.monitor()
                    record.update(result)
                    bar.write(f"epoch {finished}: loss {record['loss']:.4f}, "
                              f"kNN top-1 {result['knn_top1']:.3f}")
                epochs_log.write(json.dumps(record) + "\n")
                epochs_log.flush()
                improved = record.get("knn_top1", -math.inf) > self.best
                if improved:
                    self.best = record["knn_top1"]
                self.save()
                if improved:
                    shutil.copyfile(self.run_dir / "last.npz", self.run_dir / "best.npz")
            bar.close()
        finally:
            steps_log.close()
            epochs_log.close()
            signal.signal(signal.SIGINT, previous_handler)
        result["train_s"] = time.perf_counter() - started
        return result
