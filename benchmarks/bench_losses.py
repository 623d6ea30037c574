"""Fused NT-Xent against the same loss composed from primitive ops.

Forward + backward of SimCLR's NT-Xent at N = 512 pairs, D = 128, τ = 0.5,
float32, three ways in one run:

1. composed from minicon's primitive ops (``tests/composed_losses.py``:
   normalize, concatenate, matmul, masked log-softmax, pick, mean — about a
   dozen graph nodes, each with its own N×N temporaries and backward GEMMs);
2. minicon's fused ``NTXent`` (one node: one forward GEMM, one in-place
   softmax, one backward GEMM on G + Gᵀ);
3. PyTorch CPU, when installed, as an outside reference (F.normalize, masked
   logits, F.cross_entropy).

All three must give the same gradients before anything is timed. The ratio
composed / fused is the payoff of the hand-derived backward.

Run: ``python benchmarks/bench_losses.py`` (2 BLAS threads).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minicon and tests

import numpy as np  # noqa: E402

from common import limit_threads, machine, print_table, time_call  # noqa: E402

from minicon import Tensor  # noqa: E402
from minicon.losses import nt_xent  # noqa: E402
from tests.composed_losses import nt_xent_composed  # noqa: E402

N, D, TEMPERATURE = 512, 128, 0.5


def nt_xent_rows() -> list:
    rng = np.random.default_rng(0)
    z1_np = rng.standard_normal((N, D), dtype=np.float32)
    z2_np = rng.standard_normal((N, D), dtype=np.float32)
    z1, z2 = Tensor(z1_np, requires_grad=True), Tensor(z2_np, requires_grad=True)

    def step(loss_fn):
        def run():
            z1.grad = z2.grad = None
            loss = loss_fn(z1, z2, TEMPERATURE)
            loss.backward()
            return loss.item(), z1.grad, z2.grad

        return run

    fused, composed = step(nt_xent), step(nt_xent_composed)
    reference = composed()
    for ours, theirs in zip(fused(), reference):  # same numbers, or the timing means nothing
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-7)

    rows = [("composed from primitive ops", time_call(composed)), ("fused NTXent", time_call(fused))]
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(2)
        t1, t2 = (torch.from_numpy(a.copy()).requires_grad_() for a in (z1_np, z2_np))
        targets = (torch.arange(2 * N) + N) % (2 * N)
        diagonal = torch.eye(2 * N, dtype=torch.bool)

        def torch_step():
            t1.grad = t2.grad = None
            z = F.normalize(torch.cat([t1, t2]), dim=1)
            logits = (z @ z.T / TEMPERATURE).masked_fill(diagonal, float("-inf"))
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            return loss.item(), t1.grad.numpy(), t2.grad.numpy()

        for ours, theirs in zip(torch_step(), reference):
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-7)
        rows.append((f"PyTorch {torch.__version__} CPU", time_call(torch_step)))
    except ImportError:
        rows.append(("PyTorch CPU (not installed)", float("nan")))
    fused_time = rows[1][1]
    return [(name, f"{t * 1e3:.2f}", f"{t / fused_time:.2f}×") for name, t in rows]


def main() -> None:
    with limit_threads(2):
        print(f"machine: {machine()}; 2 BLAS threads; float32\n")
        print(f"NT-Xent forward + backward, N = {N} pairs (2N = {2 * N} rows), D = {D}, "
              f"τ = {TEMPERATURE}:\n")
        print_table(["implementation", "ms/step", "vs fused"], nt_xent_rows())


if __name__ == "__main__":
    main()
