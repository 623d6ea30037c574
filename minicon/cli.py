"""The ``minicon`` command line (also ``python -m minicon``).

Each subcommand is one function taking the parsed arguments; user mistakes
end as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import platform
import sys

from . import __version__, backend


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def _positive_int(text: str) -> int:
    """argparse type for a count: ``--subset -5`` is refused, not read as "all but five"."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def _cmd_info(args) -> int:
    import numpy

    print(f"minicon {__version__}")
    print(f"python  {platform.python_version()} ({platform.machine()})")
    print(f"numpy   {numpy.__version__}")
    ok, why = backend.cupy_available()
    if ok:
        import cupy

        print(f"cupy    {cupy.__version__} (GPU available)")
    else:
        print(f"cupy    unavailable: {why}")
    print(f"backend {backend.get_backend()} (MINICON_BACKEND or --backend)")
    return 0


def _selftest_cases():
    """(name, fn, input shapes) for every primitive op, inputs kept away from kinks."""
    import minicon as mc

    return [
        ("add (broadcast)", lambda a, b: a + b, [(3, 4), (4,)]),
        ("sub", lambda a, b: a - b, [(3, 1), (1, 4)]),
        ("mul", lambda a, b: a * b, [(2, 3), (2, 3)]),
        ("div", lambda a, b: a / (b * b + 1.0), [(2, 3), (3,)]),
        ("neg", lambda a: -a, [(5,)]),
        ("pow", lambda a: (a * a + 1.0) ** 1.5, [(4,)]),
        ("matmul (batched)", lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
        ("exp", mc.exp, [(3, 3)]),
        ("log", lambda a: (a * a + 1.0).log(), [(3, 3)]),
        ("sqrt", lambda a: (a * a + 1.0).sqrt(), [(3, 3)]),
        ("abs", lambda a: (a + 10.0).abs(), [(3, 3)]),
        ("clip", lambda a: (a * 0.1).clip(-10.0, 10.0), [(3, 3)]),
        ("relu", lambda a: (a + 10.0).relu(), [(3, 3)]),
        ("sigmoid", mc.sigmoid, [(3, 3)]),
        ("tanh", mc.tanh, [(3, 3)]),
        ("sum", lambda a: a.sum(axis=1), [(3, 4)]),
        ("mean", lambda a: a.mean(axis=(0, 2), keepdims=True), [(2, 3, 2)]),
        ("max", lambda a: a.max(axis=0), [(3, 4)]),
        ("reshape", lambda a: a.reshape(4, 3), [(2, 6)]),
        ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 2)]),
        ("getitem", lambda a: a[[0, 2, 0], 1:], [(3, 4)]),
        ("concatenate", lambda a, b: mc.concatenate([a, b], axis=1), [(2, 3), (2, 2)]),
        ("stack", lambda a, b: mc.stack([a, b], axis=1), [(2, 3), (2, 3)]),
        ("softmax", lambda a: a.softmax(axis=1), [(3, 4)]),
        ("log_softmax", lambda a: a.log_softmax(axis=0), [(3, 4)]),
    ]


def _cmd_selftest(args) -> int:
    """Gradient-check every primitive op in float64 and print a table."""
    import minicon as mc
    from tqdm import tqdm

    mc.manual_seed(args.seed)
    rows, failed = [], 0
    for name, fn, shapes in tqdm(_selftest_cases(), desc="gradcheck", unit="op", leave=False):
        inputs = [mc.Tensor(mc.backend.host_rng().standard_normal(s), requires_grad=True) for s in shapes]
        try:
            mc.gradcheck(fn, *inputs)
            rows.append((name, "ok"))
        except mc.GradcheckError as exc:
            rows.append((name, f"FAILED: {exc}"))
            failed += 1
    width = max(len(n) for n, _ in rows)
    print(f"{'op'.ljust(width)}  float64 gradcheck vs central differences")
    for name, result in rows:
        print(f"{name.ljust(width)}  {result}")
    print(f"{len(rows) - failed} passed, {failed} failed on backend {mc.get_backend()}")
    return 1 if failed else 0


def _cmd_download(args) -> int:
    from .data import download_cifar

    folder = download_cifar(args.dataset, root=args.root, layout=args.layout)
    print(f"{args.dataset} is in {folder}")
    return 0


def _cmd_augment_grid(args) -> int:
    from .augment import moco_v2_cifar, simclr_cifar
    from .data import load_cifar10
    from .plots import augmentation_grid

    images, labels, names = load_cifar10(args.data_dir, "test", download=False)
    preset = {"simclr": simclr_cifar, "moco_v2": moco_v2_cifar}[args.preset]
    fig = augmentation_grid(images, preset(), args.n_views, args.n_images, labels=labels,
                            class_names=names, seed=args.seed)
    fig.savefig(args.out, dpi=150)
    print(f"saved {args.out}")
    return 0


def _train_config(args):
    """The run's config: flags over the TOML file over the defaults, or, on ``--resume``,
    over the run's own ``config.json``, so a run resumes as it was started even after
    the defaults have changed. Only where the data lies may change on resume:
    --data-dir or MINICON_DATA_DIR replace the saved folder (the data may have moved)."""
    import os
    from pathlib import Path

    from .train.config import ConfigError, TrainConfig, load_toml

    saved = Path(args.out) / "config.json" if args.resume and args.out else None
    values = TrainConfig.from_run(saved).to_dict() if saved and saved.exists() else {}
    if args.data_dir or os.environ.get("MINICON_DATA_DIR"):
        values.pop("data_dir", None)
    values.update(load_toml(args.config) if args.config else {})
    flags = {
        "method": args.method, "encoder": args.encoder, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "temperature": args.temperature,
        "optimizer": args.optimizer, "train_subset": args.train_subset, "seed": args.seed,
        "data_dir": args.data_dir, "backend": args.backend, "knn_every": args.knn_every,
        "crop_scale": args.crop_scale, "crop_size": args.crop_size, "widths": args.widths,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    values.setdefault("backend", backend.get_backend())
    if args.widths is not None and values.get("encoder", "convnet") != "convnet":
        raise ConfigError(f"--widths sets the ConvNet's blocks; --encoder {values['encoder']} has fixed widths")
    return TrainConfig.from_dict(values)


def _cmd_train(args) -> int:
    if not args.distributed:
        return _train(args, None)
    from . import distributed

    comm = distributed.init(args.backend)
    with distributed.abort_on_error(comm, one_line=(UserError, RuntimeError, ValueError, OSError)):
        return _train(args, comm)


def _train(args, comm) -> int:
    import time
    import warnings

    import numpy
    from tqdm import tqdm

    from .train import Trainer
    from .train.evaluation import epochs_text

    config = _train_config(args)
    ranks = 1 if comm is None else comm.size
    if args.resume and config.ranks != ranks:
        raise UserError(f"--resume: {args.out} was trained on {config.ranks} rank(s); resume it with the same "
                        f"number (mpirun -n {config.ranks} ... --distributed), not {ranks}")
    config.ranks = ranks
    out = args.out or f"runs/{config.method}-{config.encoder}-{time.strftime('%Y%m%d-%H%M%S')}"
    if comm is not None:
        out = comm.bcast(out)  # rank 0's clock names the folder every rank uses
    trainer = Trainer(config, out, resume=args.resume, comm=comm)
    say = print if trainer.writer else (lambda *a, **k: None)
    if trainer.finished():
        trainer.close()
        say(f"{out} has already finished its {epochs_text(config.epochs)}; nothing to resume. "
            f"Evaluate it with `minicon eval {out}`")
        return 0
    on = "" if ranks == 1 else f" on {ranks} ranks ({config.batch_size // ranks} images of each batch per rank)"
    say(f"training {config.method} with a {config.encoder} on {len(trainer.train_images)} CIFAR-10 "
          f"images for {epochs_text(config.epochs)} "
          f"({trainer.steps_per_epoch} steps each){on} into {out}")
    try:
        # a diverging run's overflow is reported once, by the NaN-loss error, not as a warning per op
        with warnings.catch_warnings(), numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # a collapse warning as one line above the progress bar
            warnings.showwarning = lambda message, *_, **__: tqdm.write(f"minicon: warning: {message}",
                                                                        file=sys.stderr)
            result = trainer.fit()
    except KeyboardInterrupt:  # the message says what is on disk: a second Ctrl-C may stop before a save
        resume = f" Continue with: minicon train --out {out} --resume" if trainer.saved_step is not None else ""
        say(f"\ninterrupted at step {trainer.step}. {trainer.checkpoint_status()}.{resume}", file=sys.stderr)
        return 130
    if trainer.writer:  # the other ranks ran no monitor
        print(f"done in {result['train_s'] / 60:.1f} min: kNN top-1 {result['knn_top1']:.3f} (monitor: "
              f"{config.knn_test} test images). Run `minicon eval {out}` for the full kNN and linear probe.")
    return 0


def _cmd_eval(args) -> int:
    from .train.evaluation import evaluate_run, format_report

    report = evaluate_run(args.run, probe=args.probe, baselines=args.baselines,
                          data_dir=args.data_dir, checkpoint=args.checkpoint, subset=args.subset)
    print(format_report(report))
    return 0


def _cmd_plot(args) -> int:
    from pathlib import Path

    from .train.evaluation import plot_run

    for path in plot_run(Path(args.run), data_dir=args.data_dir):
        print(f"saved {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicon",
        description="Contrastive learning from scratch in NumPy (and CuPy).",
    )
    parser.add_argument("--version", action="version", version=f"minicon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_parser = sub.add_parser

    def with_backend(*a, **k):
        p = add_parser(*a, **k)
        p.add_argument("--backend", choices=backend.BACKENDS, default=None,
                       help="array backend (default: MINICON_BACKEND or numpy)")
        return p

    p = with_backend("info", help="show versions and which backends work here")
    p.set_defaults(func=_cmd_info)
    p = with_backend("selftest", help="gradient-check every op against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs")
    p.set_defaults(func=_cmd_selftest)

    from .train.config import ENCODERS, METHODS, OPTIMIZERS, TrainConfig, method_defaults

    # the help shows the preset from its one source, so the two cannot drift apart
    preset = TrainConfig()
    simclr, moco, clip = (method_defaults(name) for name in ("simclr", "moco", "clip"))
    p = with_backend("train", help="learn representations of CIFAR-10 (without labels, but for SupCon's "
                                            "and CLIP's class-name captions)")
    p.add_argument("--method", choices=METHODS, help=f"default: {preset.method}")
    p.add_argument("--encoder", choices=ENCODERS, help=f"default: {preset.encoder}")
    p.add_argument("--epochs", type=int, help=f"passes over the training set (default: {preset.epochs})")
    p.add_argument("--batch-size", type=int, help=f"images per step (default: {preset.batch_size})")
    supcon = method_defaults("supcon")
    p.add_argument("--lr", type=float, help=f"peak learning rate, after warmup (default: SimCLR {simclr['lr']:g}, "
                                            f"MoCo {moco['lr']:g}, CLIP {clip['lr']:g}, "
                                            f"SimSiam/BYOL/SupCon {supcon['lr']:g})")
    p.add_argument("--temperature", type=float,
                   help=f"τ of the loss (default: SimCLR {simclr['temperature']}, "
                        f"MoCo {moco['temperature']}, SupCon {supcon['temperature']}; for CLIP the starting τ "
                        "of its learned scale, 0.07; SimSiam and BYOL have none)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {preset.optimizer}")
    p.add_argument("--crop-scale", type=float,
                   help=f"smallest crop area, a fraction (default: MoCo {moco['crop_scale']}, "
                        f"the others {simclr['crop_scale']})")
    p.add_argument("--crop-size", type=int,
                   help=f"side of the training views in pixels, >= 8 (default {preset.crop_size}; smaller is faster)")
    p.add_argument("--widths", type=int, nargs="+", metavar="W",
                   help="channels of each ConvNet block (--encoder convnet; "
                        f"default: {' '.join(map(str, preset.widths))})")
    p.add_argument("--train-subset", type=int, help="train on this many images (a quick run)")
    p.add_argument("--knn-every", type=int, help="epochs between kNN-monitor evaluations")
    p.add_argument("--seed", type=int)
    p.add_argument("--data-dir", help="CIFAR folder (default: MINICON_DATA_DIR or the cache)")
    p.add_argument("--out", help="run folder (default: runs/METHOD-ENCODER-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--config", help="TOML file of settings; flags override it")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpirun -n P` (needs mpi4py: pip install -e '.[mpi]')")
    p.set_defaults(func=_cmd_train)

    p = with_backend("eval", help="kNN and linear-probe accuracy of a trained run")
    p.add_argument("run", help="run folder")
    p.add_argument("--probe", choices=("linear", "knn", "all"), default="all")
    p.add_argument("--baselines", action="store_true", help="also raw pixels and a random encoder")
    p.add_argument("--checkpoint", choices=("best", "last"), default="last")
    p.add_argument("--subset", type=_positive_int, help="evaluate on this many train and test images (quick look)")
    p.add_argument("--data-dir")
    p.set_defaults(func=_cmd_eval)

    p = with_backend("plot", help="training curves, a similarity heatmap and an augmentation grid as PNG")
    p.add_argument("run", help="run folder")
    p.add_argument("--data-dir")
    p.set_defaults(func=_cmd_plot)

    from .retrieval.commands import add_parsers as add_retrieval_parsers

    add_retrieval_parsers(sub, _positive_int, with_backend)  # embed, search, dedup

    p = sub.add_parser("download", help="download and verify a CIFAR dataset")
    p.add_argument("dataset", choices=("cifar10", "cifar100"))
    p.add_argument("--root", help="target folder (default: MINICON_DATA_DIR or the cache)")
    p.add_argument("--layout", choices=("binary", "python"), default="binary")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("augment-grid", help="save originals beside augmented views as PNG")
    p.add_argument("--out", default="augmentations.png")
    p.add_argument("--preset", choices=("simclr", "moco_v2"), default="simclr")
    p.add_argument("--n-images", type=_positive_int, default=8)
    p.add_argument("--n-views", type=_positive_int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.set_defaults(func=_cmd_augment_grid)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if getattr(args, "backend", None):
            backend.set_backend(args.backend)
        return args.func(args)
    except (UserError, RuntimeError, ValueError, OSError) as exc:  # OSError: files, network
        print(f"minicon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicon: interrupted", file=sys.stderr)
        return 130
