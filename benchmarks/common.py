"""Shared helpers for the benchmark scripts: thread limits, timing, tables."""

from __future__ import annotations

import os
import platform
import statistics
import time


def limit_threads(n: int = 2):
    """Pin BLAS (and PyTorch, if imported later) to ``n`` threads; returns the limiter."""
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    return threadpool_limits(limits=n)


def time_call(fn, repeat: int = 7, warmup: int = 2, min_time: float = 0.05) -> float:
    """Median wall time of one call of ``fn`` in seconds.

    Each of ``repeat`` samples runs ``fn`` enough times to last ``min_time``
    seconds, so tiny calls are not dominated by timer resolution.
    """
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def machine() -> str:
    """One line naming the machine the numbers come from."""
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {numpy.__version__}"


def print_table(headers: list, rows: list) -> None:
    """A Markdown table (pastes straight into the README)."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))
