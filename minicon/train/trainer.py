"""The training loop shared by every method: data, steps, monitor, checkpoints.

One :class:`Trainer` runs any method that has ``training_step(batch) ->
loss``. It owns the run folder::

    RUN/config.json      the resolved TrainConfig
    RUN/steps.jsonl      one line per step: step, epoch, loss, lr, images/s (+ CLIP's logit scale)
    RUN/epochs.jsonl     one line per epoch: mean loss, kNN top-1/top-5, diagnostics of z
    RUN/last.npz         checkpoint written at the end of every epoch (before its monitor runs)
                         and when Ctrl-C stops the run, after the step in progress
    RUN/best.npz         checkpoint of the epoch with the best kNN top-1
    RUN/.lock            locked (flock) by the one Trainer that writes the folder

Resuming restores the model, optimizer, schedule position, queue, host RNG
and data position, so a resumed run reproduces the losses of an
uninterrupted one exactly (on one backend). On CuPy this holds because
nothing random is drawn from CuPy's own generator (which no checkpoint
saves) and the methods' sums are in a fixed order (GEMMs and reductions,
not atomic scatters); it is tested on a GPU in tests/test_cupy.py.

A run folder never loses a run. Checkpoints and config.json are written
atomically (temp file, fsync, rename), so kill -9 or a full disk leaves the
previous file; the temp files of a killed write are deleted when the folder
is next opened. Resuming drops the log lines written after the checkpoint
(and a torn last line), so the logs hold each step once. A second Trainer
on a locked folder, a folder with run files but no readable config.json,
and a checkpoint that does not fit the config are one-line ConfigErrors. A
run stopped before its first checkpoint has nothing to resume: a fresh
start replaces it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
import warnings
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
from ..distributed import allreduce_gradients, data_parallel, shard
from ..methods import build_method
from ..nn import ConvNet, resnet18
from ..optim import SGD, LARS, Adam, AdamW, WarmupCosine
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, method_defaults, save_json
from .runfolder import LOGS, check_run_dir, lock_run_dir, read_jsonl, remove_orphan_temps, truncate_logs

_STATE_KEYS = ("step", "best", "model", "optimizer", "schedule", "host_rng")


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message says where and what is kept."""


class CollapseWarning(UserWarning):
    """The monitor found the embeddings collapsed to (nearly) one point."""


def _clip(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters: a one-line error must stay readable (a state dict names hundreds of keys)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        The run folder; created if missing (not for ``resume``).
    resume : bool
        Continue the run in ``run_dir`` from its ``last.npz``.
    train_data, test_data : tuple, optional
        ``(images uint8 N×3×32×32, labels int64, class_names)``; default:
        CIFAR-10 from ``config.data_dir``.
    progress : bool
        Show a tqdm progress bar.
    comm : communicator, optional
        From :func:`minicon.distributed.init`, with ``comm.size ==
        config.ranks``: data-parallel training. Every rank builds the same
        model (same seed), takes its 1/P of each batch (the whole batch is
        augmented on every rank with the batch's own generator, so the views
        do not depend on P), and averages gradients after ``backward``; only
        rank 0 writes the run folder (lock, logs, checkpoints) and runs the
        monitor. Resuming reads ``last.npz`` on every rank, so the folder
        must be visible to all of them.

    Constructing a Trainer calls ``minicon.set_backend(config.backend)``: the
    backend stays switched for the rest of the process (as in a notebook that
    trains on CuPy and then evaluates), until set again. It locks
    ``run_dir/.lock`` until :meth:`fit` ends or :meth:`close` is called.

    Attributes
    ----------
    step : int
        Steps taken (in memory).
    saved_step : int or None
        The step ``last.npz`` holds on disk; None while there is none.

    Raises
    ------
    ConfigError
        If another Trainer holds ``run_dir``; if it already holds a different
        run, or holds a checkpointed run and ``resume`` is False; if it holds
        logs or checkpoints but no ``config.json``; if ``resume`` is True and
        there is no checkpoint, or the checkpoint does not fit the config; if
        the batch is larger than the training data or the test data has
        fewer than 2 images for the monitor; if ``config.ranks`` is not the
        number of ranks running (``comm.size``, 1 without ``comm``).
    """

    def __init__(self, config: TrainConfig, run_dir, *, resume: bool = False, train_data=None,
                 test_data=None, progress: bool = True, comm=None):
        config.validate()  # before the method's defaults are looked up by its name
        for key, value in method_defaults(config.method).items():
            if getattr(config, key) is None:
                setattr(config, key, value)
        self.config = config
        self.run_dir = Path(run_dir)
        if (1 if comm is None else comm.size) != config.ranks:
            raise ConfigError(f"the run is set for {config.ranks} ranks but {1 if comm is None else comm.size} "
                              f"{'is' if comm is None else 'are'} running")
        self.comm = comm
        self.writer = comm is None or comm.rank == 0
        self.progress = progress and self.writer
        self.saved_step = None
        self._lock = None
        self._shielded = []
        if resume and not self.run_dir.is_dir():  # checked before mkdir: no empty folder for a mistyped --out
            raise ConfigError(f"--resume: {self.run_dir} holds no run to resume")
        if self.writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = lock_run_dir(self.run_dir)
        try:
            if self.writer:
                remove_orphan_temps(self.run_dir)
                check_run_dir(self.run_dir, self.config, resume)
            self._build(train_data, test_data)
            if resume:
                self._load(self.run_dir / "last.npz")
            elif self.writer:
                for name in LOGS:  # of a run replaced before its first checkpoint
                    (self.run_dir / name).unlink(missing_ok=True)
            if self.writer:
                save_json(config, self.run_dir / "config.json")  # on resume: where the data lies now
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder's lock (idempotent); :meth:`fit` does it when it ends."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _build(self, train_data, test_data) -> None:
        config = self.config
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
        if config.train_subset is not None and config.train_subset > len(images):
            raise ConfigError(f"--train-subset {config.train_subset} is larger than the {len(images)} "
                              "training images")
        self.train_images, self.train_labels = subset(images, labels, config.train_subset, config.seed)
        self.test_images, self.test_labels = test_data[0], test_data[1]
        if len(self.train_images) < config.batch_size:  # drop_last would leave no step at all
            raise ConfigError(f"--batch-size {config.batch_size} is larger than the {len(self.train_images)} "
                              "training images: not one batch per epoch")
        if min(config.knn_test, len(self.test_images)) < 2:
            raise ConfigError(f"the monitor needs at least 2 test images (knn_test = {config.knn_test}, "
                              f"{len(self.test_images)} given)")
        self.model = data_parallel(build_model(config, list(self.class_names)), self.comm)
        self.optimizer_params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, self.optimizer_params)
        self.loader = DataLoader(self.train_images, self.train_labels, config.batch_size,
                                 seed=config.seed, transform=train_transform(config))
        self.steps_per_epoch = len(self.loader)
        total = config.epochs * self.steps_per_epoch
        warmup = min(int(round(config.warmup_epochs * self.steps_per_epoch)), total - 1)
        self.schedule = WarmupCosine(self.optimizer, total_steps=total, warmup_steps=warmup)
        self.step = 0
        self.best = -math.inf

    def _mean_over_ranks(self, loss, interrupts: list, agreed: list) -> float:
        """The mean of the ranks' losses, in one Allreduce that also tells every rank of a Ctrl-C on any."""
        xp = backend.array_module(loss.data)
        both = xp.asarray([float(loss.item()), float(bool(interrupts))], dtype=xp.float64)
        self.comm.allreduce_(both)
        if both[1] > 0:
            agreed.append(True)
        return float(both[0]) / self.comm.size

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
        state = load_checkpoint(path)  # a truncated or foreign file: ValueError naming it
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ConfigError(f"{path} is not a training checkpoint: it has no {', '.join(missing)} "
                              f"(a Trainer saves {', '.join(_STATE_KEYS)})")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            backend.host_rng().bit_generator.state = state["host_rng"]
            self.step, self.best = int(state["step"]), float(state["best"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ConfigError(f"{path} does not fit the run that {self.run_dir / 'config.json'} describes "
                              f"(was it edited?): {_clip(str(exc))}") from None
        self.saved_step = self.step
        if self.writer:
            truncate_logs(self.run_dir, self.step)

    def save(self, name: str = "last.npz") -> Path:
        """Write the state to ``run_dir/name`` atomically; returns the path."""
        path = self.run_dir / name
        with self._shield():  # a second Ctrl-C waits for the write, so saved_step tells the truth
            if self.writer:
                save_checkpoint(self.state(), path)
            if name == "last.npz":
                self.saved_step = self.step
        return path

    @contextlib.contextmanager
    def _shield(self):
        """A section :meth:`fit`'s second Ctrl-C does not break into (it takes effect after)."""
        self._shielded.append(True)
        try:
            yield
        finally:
            self._shielded.pop()

    def checkpoint_status(self) -> str:
        """What ``last.npz`` on disk holds, in one sentence, for the message of a stopped run."""
        if self.saved_step is None:
            return (f"No checkpoint exists yet (the first is written at the end of epoch 1, step "
                    f"{self.steps_per_epoch}); start afresh: it replaces this run")
        return f"The last good checkpoint is {self.run_dir / 'last.npz'} (step {self.saved_step})"

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

    def _warn_if_collapsed(self, record: dict) -> None:
        # healthy normalized z have a per-dimension std near 1/√D (SimSiam, sec. 4.1); tiny nets at
        # init sit at 1-15% of it, while collapsed ones (lr 1e10: dead ReLUs, every z the same, NT-Xent
        # at its chance value ln(2N−1)) are at 0 up to float32 noise, so a thousandth of 1/√D splits them
        healthy = 1 / math.sqrt(record["feature_dim"])
        if record["embedding_std"] < 1e-3 * healthy:
            warnings.warn(CollapseWarning(
                f"epoch {record['epoch']}: the embeddings have collapsed to one point (embedding std "
                f"{record['embedding_std']:.2g}, healthy about 1/√D = {healthy:.2g}; loss {record['loss']:.4f}); "
                f"the learning rate {self.config.lr:g} is likely too high"), stacklevel=2)

    def _end_epoch(self, losses: list, epochs_log, started: float, bar) -> dict:
        """Checkpoint, monitor and log the epoch that just ended; returns the monitor's result ({} if it did not run).

        The checkpoint comes first, so a monitor that fails loses no training:
        the resumed run writes the missing record (:meth:`_finish_resumed_epoch`).
        """
        cfg = self.config
        if self.saved_step != self.step:
            self.save()
        finished = self.step // self.steps_per_epoch
        record = {"epoch": finished, "step": self.step, "loss": float(numpy.mean(losses)),
                  "wall_s": time.perf_counter() - started}
        result = {}
        if not self.writer:  # rank 0 monitors and logs; the others go on to the next step's collectives
            return result
        if (cfg.knn_every and finished % cfg.knn_every == 0) or finished == cfg.epochs:
            result = self.monitor()
            record.update(result)
            bar.write(f"epoch {finished}: loss {record['loss']:.4f}, kNN top-1 {result['knn_top1']:.3f}")
            self._warn_if_collapsed(record)
        epochs_log.write(json.dumps(record) + "\n")
        epochs_log.flush()
        self._keep_if_best(record)
        return result

    def _keep_if_best(self, record: dict) -> None:
        if record.get("knn_top1", -math.inf) > self.best:
            self.best = record["knn_top1"]
            self.save("best.npz")
            self.save()  # last.npz must know the new best, or a resumed run would take a worse epoch as best

    def _epoch_end_pending(self) -> bool:
        """True when the step ends an epoch whose record, or whose ``best.npz``, the stopped run did not write."""
        if self.step == 0 or self.step % self.steps_per_epoch:
            return False
        records = read_jsonl(self.run_dir / "epochs.jsonl")
        if not records or records[-1]["step"] != self.step:
            return True
        return records[-1].get("knn_top1", -math.inf) > self.best

    def finished(self) -> bool:
        """True when every step is taken and logged: :meth:`fit` would have nothing to do."""
        return self.step >= self.config.epochs * self.steps_per_epoch and not self._epoch_end_pending()

    def _finish_resumed_epoch(self, epochs_log, started: float, bar) -> dict:
        """Resumed at an epoch's end: do what the stopped run's :meth:`_end_epoch` did not; returns its monitor result.

        Its record is missing when the monitor failed or Ctrl-C or a kill came
        after the checkpoint; ``best.npz`` is stale when the kill came after the
        record. The loaded model is the one that ended that epoch, so both can
        be made now.
        """
        if not self.writer or not self._epoch_end_pending():
            return {}
        records = read_jsonl(self.run_dir / "epochs.jsonl")
        if records and records[-1]["step"] == self.step:
            self._keep_if_best(records[-1])
            return {k: v for k, v in records[-1].items() if k not in ("epoch", "step", "loss", "wall_s")}
        first = self.step - self.steps_per_epoch
        losses = [r["loss"] for r in read_jsonl(self.run_dir / "steps.jsonl") if r["step"] > first]
        if len(losses) != self.steps_per_epoch:
            raise ConfigError(f"{self.run_dir / 'steps.jsonl'} holds {len(losses)} of the "
                              f"{self.steps_per_epoch} steps of the epoch ending at step {self.step}")
        return self._end_epoch(losses, epochs_log, started, bar)

    def _logged_losses(self, after: int) -> list:
        """The logged losses of the steps after step ``after`` up to the checkpoint's: the part of a
        resumed epoch that ran before the stop, so its record averages the whole epoch."""
        if not self.writer:
            return []
        return [r["loss"] for r in read_jsonl(self.run_dir / "steps.jsonl") if after < r["step"] <= self.step]

    def _logged_train_seconds(self) -> float:
        """Training time before this process: the last epoch record's ``wall_s`` plus the logged step
        times (batch / images per second) since it; 0 for a fresh run."""
        if not self.writer or self.step == 0:
            return 0.0
        records = [r for r in read_jsonl(self.run_dir / "epochs.jsonl") if r["step"] <= self.step]
        since = records[-1]["step"] if records else 0
        steps = [r for r in read_jsonl(self.run_dir / "steps.jsonl") if since < r["step"] <= self.step]
        return (records[-1]["wall_s"] if records else 0.0) + sum(
            self.config.batch_size / r["images_per_s"] for r in steps if r.get("images_per_s"))

    def fit(self) -> dict:
        """Run the remaining epochs; returns the final monitor result with timing.

        ``last.npz`` is written at the end of every epoch and when Ctrl-C
        stops the run; ``best.npz`` whenever the monitor's kNN top-1 improves.
        The run folder's lock is released when fit returns or raises.

        Warns
        -----
        CollapseWarning
            When a monitored epoch's embeddings have collapsed (see
            :meth:`_warn_if_collapsed`).

        Raises
        ------
        TrainingError
            When the loss becomes NaN or inf (names the step and what
            :meth:`checkpoint_status` says is on disk).
        KeyboardInterrupt
            After Ctrl-C, once the current step has finished and ``last.npz``
            has been written. A second Ctrl-C stops at once, except while a
            checkpoint is written or the data loader's thread is joined (both
            finish first); ``saved_step`` says what is on disk.
        """
        from tqdm import tqdm

        cfg = self.config
        if self._lock is None and self.writer:
            self._lock = lock_run_dir(self.run_dir)
        interrupts = []
        agreed = []  # on P ranks: a Ctrl-C counts once every rank knows of it, or one would wait alone

        def stopping() -> bool:
            return bool(interrupts if self.comm is None else agreed)

        def on_sigint(signum, frame):
            interrupts.append(True)
            if len(interrupts) > 1 and not self._shielded:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt

        previous_handler = signal.signal(signal.SIGINT, on_sigint)
        steps_log = open(self.run_dir / "steps.jsonl" if self.writer else os.devnull, "a")
        epochs_log = open(self.run_dir / "epochs.jsonl" if self.writer else os.devnull, "a")

        def sync_steps():  # every step a checkpoint holds is on disk before the checkpoint
            steps_log.flush()
            if self.writer:  # the other ranks log to os.devnull, which cannot be fsynced
                os.fsync(steps_log.fileno())

        total_steps = cfg.epochs * self.steps_per_epoch
        started = time.perf_counter() - self._logged_train_seconds()  # a resumed run's clock goes on
        bar = None
        try:
            bar = tqdm(total=total_steps, initial=self.step, disable=not self.progress,
                       unit="step", dynamic_ncols=True)
            result = self._finish_resumed_epoch(epochs_log, started, bar)
            while self.step < total_steps and not stopping():
                epoch, first = divmod(self.step, self.steps_per_epoch)
                self.loader.set_epoch(epoch, start_batch=first)
                losses = self._logged_losses(epoch * self.steps_per_epoch) if first else []
                self.model.train()
                tick = time.perf_counter()
                batches = iter(self.loader)
                try:
                    for batch in batches:
                        if stopping():
                            break
                        lr = self.optimizer.param_groups[0]["lr"]
                        if self.comm is None:
                            loss = self.model.training_step(batch)
                            value = float(loss.item())
                        else:
                            loss = self.model.training_step(shard(batch, self.comm.rank, self.comm.size))
                            value = self._mean_over_ranks(loss, interrupts, agreed)
                        if not math.isfinite(value):
                            raise TrainingError(f"loss became {value} at step {self.step + 1} (epoch {epoch + 1}); "
                                                f"stopped. {self.checkpoint_status()}")
                        self.optimizer.zero_grad()
                        loss.backward()
                        allreduce_gradients(self.optimizer_params, self.comm)
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
                finally:
                    with self._shield():  # a Ctrl-C in the loader thread's join would print a traceback
                        batches.close()
                with self._shield():
                    sync_steps()
                if stopping():
                    if self.saved_step != self.step:
                        self.save()
                else:
                    result = self._end_epoch(losses, epochs_log, started, bar)
            if stopping():
                raise KeyboardInterrupt
        finally:
            if bar is not None:
                bar.close()  # ends the bar's line, so an error printed after it starts a line of its own
            steps_log.close()
            epochs_log.close()
            signal.signal(signal.SIGINT, previous_handler)
            self.close()
        result["train_s"] = time.perf_counter() - started
        return result
