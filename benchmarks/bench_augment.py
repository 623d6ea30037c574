"""Augmentation cost: two SimCLR views of a 512-image CIFAR batch, against a training step.

1. ms per batch to make two views of 512 uint8 CIFAR images with
   ``simclr_cifar()`` and ``moco_v2_cifar()`` (ToFloat included), on NumPy and,
   where a GPU is usable, CuPy; plus the cost of each step of one SimCLR view.
2. The reference the issue asks for: one training step of a ConvNet on the
   two views (forward + backward over 2 × 512 images). Until minicon's own
   ConvNet lands this is a stand-in measured in the same run: a small
   4-block ConvNet (32-64-128-256 channels, BN, ReLU, max-pool) in PyTorch
   CPU. Augmentation well below the step time means the prefetching
   ``DataLoader`` can hide it behind the step.

Run: ``python benchmarks/bench_augment.py`` (2 BLAS threads). Uses the real
CIFAR-10 test images when ``MINICON_DATA_DIR`` (or ``../shared/data``) holds
them, random images otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common import limit_threads, machine, print_table, time_call

import minicon
from minicon import backend
from minicon.augment import (
    ColorJitter,
    RandomApply,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ToFloat,
    TwoViews,
    moco_v2_cifar,
    simclr_cifar,
)
from minicon.data import load_cifar10

N = 512


def cifar_batch():
    """512 real CIFAR-10 test images if the data is here, else random ones; and a label."""
    here = Path(__file__).resolve()
    roots = [os.environ.get("MINICON_DATA_DIR")] + [str(p / "shared" / "data") for p in here.parents]
    for root in filter(None, roots):
        try:
            images, _, _ = load_cifar10(root, "test", download=False)
            return images[:N], f"CIFAR-10 test images from {root}"
        except FileNotFoundError:
            continue
    return np.random.default_rng(0).integers(0, 256, (N, 3, 32, 32), dtype=np.uint8), "random uint8 images"


def augmentation_rows(images, sync=lambda: None) -> list:
    """(what, ms) for the presets (two views) and each step of one SimCLR view."""
    rng = np.random.default_rng(0)
    as_float = ToFloat()(images)
    rows = []
    presets = (("simclr_cifar, two views", simclr_cifar()), ("moco_v2_cifar, two views", moco_v2_cifar()))
    for name, preset in presets:
        views = TwoViews(preset)
        rows.append((name, time_call(lambda: (views(images, generator=rng), sync()), repeat=5) * 1e3))
    steps = [
        ("  ToFloat (uint8 → float32)", ToFloat(), images),
        ("  RandomResizedCrop(32)", RandomResizedCrop(32), as_float),
        ("  RandomHorizontalFlip", RandomHorizontalFlip(), as_float),
        ("  RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), 0.8)",
         RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), 0.8), as_float),
        ("  RandomGrayscale(0.2)", RandomGrayscale(0.2), as_float),
    ]
    for name, t, x in steps:
        rows.append((name, time_call(lambda: (t(x, generator=rng), sync()), repeat=5) * 1e3))
    return rows


def torch_convnet_step():
    """A function running one stand-in training step on 2 × 512 images, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.manual_seed(0)

    def block(c_in, c_out):
        return [torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(), torch.nn.MaxPool2d(2)]

    net = torch.nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), *block(128, 256),
                              torch.nn.Flatten(), torch.nn.Linear(256 * 2 * 2, 128))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(2 * N, 3, 32, 32)

    def step():
        opt.zero_grad()
        z = torch.nn.functional.normalize(net(x), dim=1)
        z1, z2 = z[:N], z[N:]
        loss = -(z1 * z2).sum(1).mean()  # cosine of the positive pairs: a cheap stand-in loss
        loss.backward()
        opt.step()

    return step


def minicon_convnet_step():
    """HOOK for the lead: one step of minicon's ConvNet on the two views, once ``minicon.nn`` has it.

    Returns None until then; the table then reports the PyTorch stand-in only.
    """
    return None


def main() -> None:
    with limit_threads(2):
        images, source = cifar_batch()
        print(f"machine: {machine()}; 2 BLAS threads; {N} {source}\n")
        rows = [(f"NumPy: {name}", ms) for name, ms in augmentation_rows(images)]
        ok, why = backend.cupy_available()
        if ok:
            import cupy

            minicon.set_backend("cupy")
            sync = cupy.cuda.Device().synchronize
            rows += [(f"CuPy: {name}", ms) for name, ms in augmentation_rows(images, sync)]
            minicon.set_backend("numpy")
        else:
            rows.append((f"CuPy: not measured ({why.split('.')[0]})", float("nan")))

        step = torch_convnet_step()
        step_ms = time_call(step, repeat=3, warmup=1) * 1e3 if step else float("nan")
        rows.append(("reference: PyTorch CPU ConvNet step, 2 × 512 images", step_ms))
        ours = minicon_convnet_step()
        if ours is None:
            rows.append(("reference: minicon ConvNet step (pending: minicon.nn)", float("nan")))
        else:
            rows.append(("reference: minicon ConvNet step", time_call(ours, repeat=3) * 1e3))
        print_table(["what", "ms per batch", "vs PyTorch step"],
                    [(name, f"{ms:.1f}", f"{ms / step_ms:.3f}×") for name, ms in rows])


if __name__ == "__main__":
    main()
