"""One training step of ConvNet + ProjectionHead: minicon against the GEMM floor and PyTorch CPU.

The step is forward + backward of ``ConvNet()`` (32-64-128-256) and
``ProjectionHead(256, 256, 128)`` on N random 32×32 float32 images, with the
loss ``sum(z²)``. In the same run it measures:

- the floor: the float32 GEMMs of the same shapes (forward, dW and dX of every
  conv as im2col GEMMs, and of every Linear) timed alone with NumPy's BLAS;
- PyTorch on the CPU, same architecture, same thread count;
- each op's share of the minicon step, by timing every ``Function``'s
  forward and backward (the timer is patched in here, not in the library);
- the step's peak memory (``tracemalloc``, which NumPy reports its buffers
  to), against what the activations (every op output of the forward pass)
  plus the largest im2col buffer require.

Run from the repository root::

    python benchmarks/bench_train_step.py [--batch 512] [--threads 2] [--repeats 5]

Timings are medians over ``--repeats`` steps after one warm-up step; they
report, never assert.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_limits

import minicon
from minicon import Function, Tensor, nn


def build_minicon(seed: int = 0):
    minicon.manual_seed(seed)
    return nn.Sequential(nn.ConvNet(), nn.ProjectionHead(256, 256, out_dim=128))


def minicon_step(model, x: Tensor) -> None:
    model.zero_grad()
    z = model(x)
    (z * z).sum().backward()


class FunctionTimer:
    """Patch every ``Function`` subclass so each call's forward and backward are timed.

    ``seconds`` maps ``(label, phase)`` to seconds, where the label is the op
    name and its first input's shape without N (one row per layer of the
    network, in forward order); ``forward_bytes`` sums every forward output.
    """

    def __init__(self):
        self.seconds = {}
        self.forward_bytes = 0
        self._patched = []

    def __enter__(self):
        stack = [Function]
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            for phase in ("forward", "backward"):
                if phase in cls.__dict__ and cls is not Function:
                    original = cls.__dict__[phase]
                    setattr(cls, phase, staticmethod(self._timed(original.__func__, cls.__name__, phase)))
                    self._patched.append((cls, phase, original))
        return self

    def __exit__(self, *exc):
        for cls, phase, original in self._patched:
            setattr(cls, phase, original)

    def _timed(self, fn, name, phase):
        def wrapper(ctx, *args, **kwargs):
            if phase == "forward":
                ctx.bench_label = f"{name} {tuple(getattr(args[0], 'shape', ()))[1:]}"
            key = (ctx.bench_label, phase)
            start = time.perf_counter()
            out = fn(ctx, *args, **kwargs)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
            if phase == "forward":
                self.forward_bytes += out.nbytes
            return out
        return wrapper


def gemm_shapes(model, x: Tensor) -> list:
    """``(M, K, F, count, is_conv)`` of every GEMM a conv/linear layer's forward and backward needs.

    A conv over ``N×C×H×W`` with ``F`` filters of ``C×k×k`` and output
    ``H'×W'`` is ``(N·H'·W' × C·k·k) @ (C·k·k × F)`` forward, and as many
    multiply-adds each for dW and for dX (dX is skipped for the first layer,
    whose input needs no gradient). A Linear is the same with ``M = N``.
    """
    records = []
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        def recording(inp, layer=layer, forward=type(layer).forward):
            out = forward(layer, inp)
            if isinstance(layer, nn.Conv2d):
                m = out.shape[0] * out.shape[2] * out.shape[3]
                k = layer.in_channels * layer.kernel_size ** 2
            else:
                m, k = inp.shape[0], layer.in_features
            records.append((m, k, out.shape[1], 2 if layer is layers[0] else 3, isinstance(layer, nn.Conv2d)))
            return out
        object.__setattr__(layer, "forward", recording)
    with minicon.no_grad():
        model(x)
    for layer in layers:
        object.__delattr__(layer, "forward")
    return records


def im2col_bytes(records) -> int:
    """Bytes of the largest im2col matrix ``(N·H'·W') × (C·k·k)`` (float32)."""
    return max(m * k for m, k, _, _, is_conv in records if is_conv) * 4


def gemm_floor(records, repeats: int) -> tuple[float, float]:
    """Seconds for the GEMMs of ``records`` timed alone, and their FLOPs."""
    rng = np.random.default_rng(0)
    total, flops = 0.0, 0
    for m, k, f, count, _ in records:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, f), dtype=np.float32)
        total += count * interleaved_medians({"gemm": lambda: a @ b}, repeats)["gemm"]
        flops += count * 2 * m * k * f
    return total, flops


def torch_step(batch: int, threads: int):
    """A callable running one PyTorch CPU step of the same model, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    tnn = torch.nn
    layers, c = [], 3
    for i, w in enumerate((32, 64, 128, 256)):
        layers += [tnn.Conv2d(c, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w)]
        # minicon's order: pool before ReLU (equal, and the ReLU sees a quarter of the values)
        layers += [tnn.MaxPool2d(2), tnn.ReLU()] if i < 3 else [tnn.ReLU()]
        c = w
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
               tnn.Linear(256, 256, bias=False), tnn.BatchNorm1d(256), tnn.ReLU(), tnn.Linear(256, 128)]
    model = tnn.Sequential(*layers)
    x = torch.randn(batch, 3, 32, 32)

    def step():
        model.zero_grad()
        z = model(x)
        (z * z).sum().backward()

    return step


def interleaved_medians(steps: dict, repeats: int) -> dict:
    """Median seconds of each callable, timed in turns so a change in machine load hits all alike."""
    times = {name: [] for name in steps}
    for fn in steps.values():
        fn()  # warm-up: allocator, BLAS threads, lazy imports
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with threadpool_limits(limits=args.threads):
        model = build_minicon()
        x = Tensor(np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32)).astype(np.float32))

        steps = {"minicon": lambda: minicon_step(model, x)}
        reference = torch_step(args.batch, args.threads)
        if reference is not None:
            steps["torch"] = reference
        medians = interleaved_medians(steps, args.repeats)
        step_s, torch_s = medians["minicon"], medians.get("torch")

        # per-op shares from the fastest of `repeats` instrumented steps (the least disturbed one)
        with FunctionTimer() as timer:
            best = None
            for _ in range(args.repeats):
                timer.seconds.clear()
                timer.forward_bytes = 0
                start = time.perf_counter()
                minicon_step(model, x)
                elapsed = time.perf_counter() - start
                if best is None or elapsed < best[0]:
                    best = (elapsed, dict(timer.seconds), timer.forward_bytes)
        timed_step_s, op_seconds, forward_bytes = best

        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        minicon_step(model, x)
        peak_bytes = tracemalloc.get_traced_memory()[1] - baseline
        tracemalloc.stop()

        records = gemm_shapes(model, x)
        floor_s, flops = gemm_floor(records, args.repeats)
        required = forward_bytes + im2col_bytes(records)

    print(f"\nOne training step, ConvNet(32-64-128-256) + ProjectionHead(256-256-128), N={args.batch}, "
          f"32×32 float32, {args.threads} threads, median of {args.repeats}")
    print(f"{flops / 1e9:.1f} GFLOP in conv/linear GEMMs (forward + backward)\n")
    print(f"| {'':32} | {'time (ms)':>10} | {'× GEMM floor':>12} | {'× PyTorch':>9} |")
    print(f"|{'-' * 34}|{'-' * 12}|{'-' * 14}|{'-' * 11}|")
    rows = [("minicon (NumPy)", step_s), ("PyTorch CPU", torch_s), ("GEMM floor (same GEMM shapes)", floor_s)]
    for name, seconds in rows:
        if seconds is None:
            print(f"| {name:32} | {'n/a':>10} | {'':>12} | {'':>9} |")
            continue
        vs_torch = f"{seconds / torch_s:.2f}" if torch_s else "n/a"
        print(f"| {name:32} | {seconds * 1e3:10.1f} | {seconds / floor_s:12.2f} | {vs_torch:>9} |")

    print(f"\nShare of the minicon step per layer (fastest of {args.repeats} instrumented steps, "
          f"{timed_step_s * 1e3:.0f} ms; input shape without N; layers with the same op and input shape "
          "share a row):\n")
    print(f"| {'op (input C, H, W)':30} | {'forward (ms)':>12} | {'backward (ms)':>13} | {'share':>6} |")
    print(f"|{'-' * 32}|{'-' * 14}|{'-' * 15}|{'-' * 8}|")
    totals = defaultdict(float)
    for label in dict.fromkeys(label for label, _ in op_seconds):
        fwd, bwd = op_seconds.get((label, "forward"), 0.0), op_seconds.get((label, "backward"), 0.0)
        totals[label.split()[0]] += fwd + bwd
        print(f"| {label:30} | {fwd * 1e3:12.1f} | {bwd * 1e3:13.1f} | {(fwd + bwd) / timed_step_s:6.1%} |")
    engine = timed_step_s - sum(op_seconds.values())
    print(f"| {'(engine, outside ops)':30} | {'':>12} | {'':>13} | {engine / timed_step_s:6.1%} |")
    print("\nBy op: " + ", ".join(f"{name} {t / timed_step_s:.0%}"
                                  for name, t in sorted(totals.items(), key=lambda kv: -kv[1])))

    print(f"\nPeak memory of the step: {peak_bytes / 2**20:.0f} MiB (tracemalloc, above what existed before); "
          f"activations {forward_bytes / 2**20:.0f} MiB + largest im2col "
          f"{im2col_bytes(records) / 2**20:.0f} MiB = {required / 2**20:.0f} MiB required "
          f"→ {peak_bytes / required:.2f}×")


if __name__ == "__main__":
    main()
