"""SimCLR preset throughput: 1 process × 2 BLAS threads against 2 MPI ranks × 1 thread, and the communication share.

A step is the preset's (ConvNet 32-64-128-1024, projection head with batch
norm, 24×24 views, global batch 256, Adam): forward, backward, gradient
averaging and the optimizer step, on random views (augmentation is left
out: the loader prepares it in a background thread). With 2 ranks each
takes 128 images; batch norm is synchronized and NT-Xent sees the gathered
256 pairs. Communication time is the wall time spent inside the
communicator's calls (Allreduce, Allgather, Reduce_scatter) on rank 0, so
it includes waiting for the slower rank.

Each configuration runs in a fresh process (``mpirun`` for the ranks) with
its BLAS thread count fixed by ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``.
Run from the repository root::

    python benchmarks/bench_distributed.py [--steps 5] [--batch 256]

It reports, never asserts. PyTorch is not compared here (not installed on
the machine these numbers come from).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def worker(steps: int, batch: int) -> None:
    import numpy

    import minicon
    from minicon import distributed
    from minicon.methods import build_method
    from minicon.nn import ConvNet
    from minicon.optim import Adam

    comm = distributed.init() if os.environ.get("OMPI_COMM_WORLD_SIZE") else None
    ranks, rank = (1, 0) if comm is None else (comm.size, comm.rank)
    spent = [0.0]
    if comm is not None:
        for name in ("allreduce_", "allgather", "reduce_scatter"):
            call = getattr(comm, name)

            def timed(a, call=call):
                start = time.perf_counter()
                try:
                    return call(a)
                finally:
                    spent[0] += time.perf_counter() - start

            setattr(comm, name, timed)
    minicon.manual_seed(0)
    model = distributed.data_parallel(build_method("simclr", ConvNet()), comm)
    params = list(model.parameters())
    optimizer = Adam(params, lr=1e-3)
    rng = numpy.random.default_rng(0)
    views = tuple(rng.random((batch, 3, 24, 24), dtype=numpy.float32) for _ in range(2))
    local = distributed.shard((views, numpy.zeros(batch, dtype=numpy.int64)), rank, ranks)
    times, comm_times = [], []
    for step in range(steps + 1):  # the first is a warm-up
        spent[0] = 0.0
        start = time.perf_counter()
        loss = model.training_step(local)
        optimizer.zero_grad()
        loss.backward()
        distributed.allreduce_gradients(params, comm)
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
            comm_times.append(spent[0])
    if rank == 0:
        print(json.dumps({"ranks": ranks, "step_s": float(numpy.median(times)),
                          "comm_s": float(numpy.median(comm_times)), "loss": float(loss.item())}))


def run(ranks: int, threads: int, steps: int, batch: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, __file__, "--worker", "--steps", str(steps), "--batch", str(batch)]
    if ranks > 1:
        from minicon.distributed import mpirun_command

        exported = [a for name in ("PYTHONPATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") for a in ("-x", name)]
        command = mpirun_command() + ["-n", str(ranks), *exported] + command
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    parser.add_argument("--batch", type=int, default=256, help="global batch (the preset's 256)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.batch)
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's minicon, as the workers get
    from common import machine, print_table

    print(f"{machine()}; SimCLR preset step, global batch {args.batch}, median of {args.steps}")
    rows = []
    for ranks, threads in ((1, 2), (2, 1)):
        out = run(ranks, threads, args.steps, args.batch)
        share = f"{out['comm_s'] / out['step_s']:.0%}" if ranks > 1 else "—"
        rows.append([f"{ranks} × {threads} BLAS thread{'s' if threads > 1 else ''}", f"{out['step_s'] * 1e3:.0f}",
                     f"{args.batch / out['step_s']:.0f}", share, f"{out['loss']:.6f}"])
    print_table(["processes × threads", "step (ms)", "images/s", "communication share", "loss after the steps"], rows)


if __name__ == "__main__":
    main()
