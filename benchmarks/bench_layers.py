"""Per-layer forward + backward times of the ConvNet encoder's ops, against references.

Shapes are those of the default ConvNet (conv3x3-BN-ReLU blocks of widths
32-64-128-256, 2×2 max-pool between blocks, global average pool; timed in
the textbook order, ReLU before max-pool, though the ConvNet pools first) on a batch
of N = 512 images of 32×32, float32, two threads. For every op it times one
forward and one backward (minimum over repeats, in milliseconds) and prints:

* ``torch``: the same op in PyTorch on the CPU, same threads and shapes
  (when torch is installed), and ``ratio`` = minicon / torch;
* ``gemm``: for convolutions, the floor: the float32 GEMMs of the same
  FLOPs alone (forward, grad_W and, except for the first layer, grad_x),
  each one call over the whole batch, and ``/gemm`` = minicon / floor.
  conv2d's own GEMMs run on cache-sized chunks and can beat this floor.

Inputs are given in the memory layout they have inside the network:
channels-last for minicon (what the previous op returns), contiguous NCHW
for torch. The first conv's input needs no gradient, as in training.

Run: ``python benchmarks/bench_layers.py [--batch 512] [--repeats 5] [--threads 2] [--only conv]
[--clock wall|cpu]``. On a machine other processes also load, BLAS threads
wait on each other and wall times swing several-fold; ``--threads 1 --clock
cpu`` then still gives a steady per-core comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import minicon
import minicon.functional as F
from minicon import Tensor

try:
    import torch
except ImportError:  # the comparison column is left empty
    torch = None

WIDTHS = (3, 32, 64, 128, 256)
SIZES = (32, 16, 8, 4)


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def best_ms(fn, repeats: int, clock=time.perf_counter) -> float:
    fn()  # warm-up: first-touch page faults, BLAS buffers
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * min(times)


def channels_last(a):
    """The same NCHW values in channels-last memory, as minicon's ops pass them on."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def train_step(fn, inputs, grad):
    """One forward and backward of ``fn`` (minicon and torch tensors alike)."""

    def step():
        for t in inputs:
            t.grad = None
        fn(*inputs).backward(grad)

    return step


def cases(n: int, rng):
    """(name, minicon fn, torch fn, input arrays, which need grad, gemm shapes)."""
    tf = torch.nn.functional if torch else None
    out = []
    for stage, size in enumerate(SIZES):
        c, f = WIDTHS[stage], WIDTHS[stage + 1]
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((f, c, 3, 3), dtype=np.float32) * 0.1
        m, k = n * size * size, 9 * c
        gemms = [(m, k, f), (f, m, k)] + ([(m, f, k)] if stage else [])
        # No bias, as in the ConvNet: the batch norm that follows would cancel it.
        out.append((f"conv{stage + 1} {c}->{f} @{size}", lambda x, w: F.conv2d(x, w, None, 1, 1),
                    tf and (lambda x, w: tf.conv2d(x, w, None, 1, 1)), (x, w),
                    (stage > 0, True), gemms))
        y = rng.standard_normal((n, f, size, size), dtype=np.float32)
        gamma, beta = np.ones(f, np.float32), np.zeros(f, np.float32)
        buffers = (np.zeros(f, np.float32), np.ones(f, np.float32))
        tbuffers = tuple(torch.from_numpy(a.copy()) for a in buffers) if torch else None
        out.append((f"bn{stage + 1} {f} @{size}",
                    lambda x, g, b, buffers=buffers: F.batch_norm(x, *buffers, g, b, True),
                    tf and (lambda x, g, b, tbuffers=tbuffers: tf.batch_norm(x, *tbuffers, g, b, True)),
                    (y, gamma, beta), (True, True, True), None))
        out.append((f"relu{stage + 1} {f} @{size}", F.relu, tf and tf.relu, (y,), (True,), None))
        if stage < len(SIZES) - 1:
            out.append((f"maxpool{stage + 1} {f} @{size}", lambda x: F.max_pool2d(x, 2),
                        tf and (lambda x: tf.max_pool2d(x, 2)), (np.maximum(y, 0),), (True,), None))
        else:
            out.append((f"avgpool {f} @{size}", lambda x: F.adaptive_avg_pool2d(x, 1),
                        tf and (lambda x: tf.adaptive_avg_pool2d(x, 1)), (y,), (True,), None))
    return out


def gemm_floor_ms(gemms, repeats: int, rng, clock) -> float:
    mats = [(rng.standard_normal((a, b), dtype=np.float32), rng.standard_normal((b, c), dtype=np.float32))
            for a, b, c in gemms]
    return best_ms(lambda: [p @ q for p, q in mats], repeats, clock)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="time only ops whose name contains this (e.g. conv)")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                        help="wall time, or CPU time of the process summed over its threads "
                             "(steadier on a shared machine; with --threads 1 it is the work done)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if torch:
        torch.set_num_threads(args.threads)
    minicon.set_backend("numpy")
    clock = CLOCK[args.clock]
    rows = []
    with threadpool_limits(args.threads):
        for name, fn, tfn, arrays, needs, gemms in cases(args.batch, rng):
            if args.only not in name:
                continue
            spatial = [a.ndim == 4 for a in arrays]
            inputs = [Tensor(channels_last(a) if s else a, requires_grad=r)
                      for a, s, r in zip(arrays, spatial, needs)]
            grad = fn(*inputs).data
            grad = channels_last(rng.standard_normal(grad.shape, dtype=np.float32))
            ours = best_ms(train_step(fn, inputs, grad), args.repeats, clock)
            ref = None
            if tfn is not None:
                tin = [torch.from_numpy(a.copy()).requires_grad_(r) for a, r in zip(arrays, needs)]
                tgrad = torch.from_numpy(np.ascontiguousarray(grad))
                ref = best_ms(train_step(tfn, tin, tgrad), args.repeats, clock)
            floor = gemm_floor_ms(gemms, args.repeats, rng, clock) if gemms else None
            rows.append((name, ours, ref, floor))

    print(f"\nforward+backward, N={args.batch}, float32, {args.threads} threads, best of "
          f"{args.repeats}, {args.clock} time (ms)")
    print(f"{'op':<24}{'minicon':>9}{'torch':>9}{'ratio':>7}{'gemm':>9}{'/gemm':>7}")
    fmt = lambda v, w, p=1: f"{v:>{w}.{p}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
    for name, ours, ref, floor in rows:
        print(f"{name:<24}{fmt(ours, 9)}{fmt(ref, 9)}{fmt(ref and ours / ref, 7, 2)}"
              f"{fmt(floor, 9)}{fmt(floor and ours / floor, 7, 2)}")
    total = sum(r[1] for r in rows)
    total_ref = sum(r[2] for r in rows) if torch else None
    print(f"{'total':<24}{fmt(total, 9)}{fmt(total_ref, 9)}{fmt(total_ref and total / total_ref, 7, 2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
