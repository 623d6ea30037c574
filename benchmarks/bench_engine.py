"""Engine overhead: what the autograd bookkeeping costs over plain NumPy.

1. Tiny tensors: ops per second for ``a * b + c`` on 1-element float32 tensors,
   forward only and forward + backward, against the same NumPy expression.
   With tiny arrays every op is pure Python overhead, so this is the cost
   of one ``Function.apply`` plus its share of ``backward``.
2. An MLP step on 512×256 float32 inputs (256 → 512 → ReLU → 128, mean of
   squares as the loss), forward + backward through minicon, against the
   same forward and hand-written backward in plain NumPy (the lower bound:
   the same GEMMs and elementwise work, no graph), and PyTorch CPU when it
   is installed. The ratio to plain NumPy is the engine's overhead.

Run: ``python benchmarks/bench_engine.py`` (2 BLAS threads).
"""

from __future__ import annotations

import numpy as np

from common import limit_threads, machine, print_table, time_call

import minicon
from minicon import Tensor

N, D_IN, D_HID, D_OUT = 512, 256, 512, 128


def tiny_ops() -> list:
    a_np, b_np, c_np = (np.array([x], dtype=np.float32) for x in (1.5, 2.0, 0.5))
    a = Tensor(a_np, requires_grad=True)
    b, c = Tensor(b_np), Tensor(c_np)

    def forward():
        return a * b + c

    def forward_backward():
        (a * b + c).sum().backward()

    numpy_time = time_call(lambda: a_np * b_np + c_np) / 2
    fwd = time_call(forward) / 2
    with minicon.no_grad():
        fwd_nograd = time_call(forward) / 2
    fb = time_call(forward_backward) / 3  # mul, add, sum
    rows = [
        ("NumPy, 1-element arrays", numpy_time, 1.0),
        ("minicon forward, no_grad", fwd_nograd, fwd_nograd / numpy_time),
        ("minicon forward, recording the graph", fwd, fwd / numpy_time),
        ("minicon forward + backward", fb, fb / numpy_time),
    ]
    return [(name, f"{1 / t:,.0f}", f"{t * 1e6:.2f}", f"{ratio:.1f}×") for name, t, ratio in rows]


def mlp_step() -> list:
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((N, D_IN), dtype=np.float32)
    w1_np = rng.standard_normal((D_IN, D_HID), dtype=np.float32) / 16
    b1_np = np.zeros(D_HID, np.float32)
    w2_np = rng.standard_normal((D_HID, D_OUT), dtype=np.float32) / 22
    b2_np = np.zeros(D_OUT, np.float32)

    def numpy_by_hand():
        h = x_np @ w1_np + b1_np
        r = np.maximum(h, 0)
        y = r @ w2_np + b2_np
        loss = (y * y).mean()
        gy = (2.0 / y.size) * y
        gw2 = r.T @ gy
        gb2 = gy.sum(0)
        gr = gy @ w2_np.T
        gh = gr * (h > 0)
        gw1 = x_np.T @ gh
        gb1 = gh.sum(0)
        return loss, gw1, gb1, gw2, gb2

    x = Tensor(x_np)
    params = [Tensor(p, requires_grad=True) for p in (w1_np, b1_np, w2_np, b2_np)]

    def minicon_step():
        w1, b1, w2, b2 = params
        for p in params:
            p.grad = None
        y = (x @ w1 + b1).relu() @ w2 + b2
        (y * y).mean().backward()

    minicon_step()
    for p, ref in zip(params, numpy_by_hand()[1:]):  # same numbers, or the timing means nothing
        np.testing.assert_allclose(p.grad, ref, rtol=1e-4, atol=1e-6)

    base = time_call(numpy_by_hand)
    ours = time_call(minicon_step)
    rows = [("plain NumPy, hand-written backward", base), ("minicon", ours)]
    try:
        import torch

        torch.set_num_threads(2)
        xt = torch.from_numpy(x_np)
        pt = [torch.from_numpy(p.copy()).requires_grad_() for p in (w1_np, b1_np, w2_np, b2_np)]

        def torch_step():
            w1, b1, w2, b2 = pt
            for p in pt:
                p.grad = None
            y = torch.relu(xt @ w1 + b1) @ w2 + b2
            (y * y).mean().backward()

        rows.append((f"PyTorch {torch.__version__} CPU", time_call(torch_step)))
    except ImportError:
        rows.append(("PyTorch CPU (not installed)", float("nan")))
    return [(name, f"{t * 1e3:.2f}", f"{t / base:.2f}×") for name, t in rows]


def main() -> None:
    with limit_threads(2):
        print(f"machine: {machine()}; 2 BLAS threads; float32\n")
        print("Tiny tensors (a * b + c on 1-element tensors), per op:\n")
        print_table(["what", "ops/s", "µs/op", "vs NumPy"], tiny_ops())
        print(f"\nMLP step ({N}×{D_IN} → {D_HID} → ReLU → {D_OUT}, forward + backward):\n")
        print_table(["implementation", "ms/step", "vs plain NumPy"], mlp_step())


if __name__ == "__main__":
    main()
