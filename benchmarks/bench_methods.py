"""End to end: training images per second and time per epoch of each method.

For SimCLR, MoCo and CLIP with the preset's ConvNet, times ``--steps`` full
training steps (augmentation in the prefetching loader, forward, backward,
optimizer) of the real trainer on real CIFAR-10 after one warm-up step, and
reports images per second and the implied time for one epoch of 50,000
images. Runs on the current backend (``--backend cupy`` on a GPU).

Run: ``MINICON_DATA_DIR=../shared/data python benchmarks/bench_methods.py [--steps 10]
[--batch-size 256] [--crop-size 24] [--widths 32 64 128 1024] [--methods simclr moco clip]
[--backend numpy|cupy]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import machine, print_table

from minicon.train import Trainer, TrainConfig


def measure(method: str, args) -> tuple:
    config = TrainConfig(method=method, epochs=1, batch_size=args.batch_size, backend=args.backend,
                         crop_size=args.crop_size, widths=args.widths,
                         train_subset=args.batch_size * (args.steps + 1), knn_every=0,
                         knn_train=256, knn_test=256)  # the monitor runs after the timed steps
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, Path(folder) / "run", progress=False)
        trainer.fit()
        steps = [json.loads(line) for line in (Path(folder) / "run" / "steps.jsonl").read_text().splitlines()]
    per_step = [args.batch_size / s["images_per_s"] for s in steps[1:]]  # the first step warms up
    seconds = sum(per_step) / len(per_step)
    return method, f"{args.batch_size / seconds:.0f}", f"{seconds:.2f}", f"{50_000 / args.batch_size * seconds / 60:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--crop-size", type=int, default=TrainConfig().crop_size,
                        help="side of the training views (default: the preset's)")
    parser.add_argument("--widths", type=int, nargs="+", default=TrainConfig().widths,
                        help="ConvNet channels per block (default: the preset's)")
    parser.add_argument("--methods", nargs="+", default=["simclr", "moco", "clip"],
                        choices=("simclr", "moco", "clip"))
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [measure(method, args) for method in args.methods]
    print(f"machine: {machine()}; backend {args.backend}; batch {args.batch_size}; "
          f"{args.crop_size}×{args.crop_size} views; ConvNet {'-'.join(map(str, args.widths))}; "
          f"{args.steps} timed steps each ({time.perf_counter() - start:.0f} s in all)\n")
    print_table(["method", "images/s", "s/step", "min/epoch (50,000 images)"], rows)


if __name__ == "__main__":
    main()
