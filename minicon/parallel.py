"""Split an op's elementwise work over the batch, on several CPU threads.

BLAS runs minicon's GEMMs on every core, but a NumPy ufunc (the subtract of
batch norm, the maximum of max-pooling and ReLU) runs on one. These passes
over memory took about 40% of a ConvNet training step on a 2-core CPU while
the second core sat idle. NumPy releases the GIL inside ufunc loops and
``einsum``, so Python threads that each take a block of the batch really do
run at once; an op hands its per-block work to :func:`over_batch`.

On CuPy one call covers the whole batch: the GPU already runs it in
parallel. Blocks split the FIRST axis only, so a block is a view of every
array indexed the same way and writes never overlap.

The thread count is :func:`num_threads`: ``MINICON_NUM_THREADS``, else the
usual BLAS variables (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``) so one setting limits both, else the CPUs this process
may use. :func:`set_num_threads` changes it at run time.
"""

from __future__ import annotations

import itertools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor, wait

import numpy

# Below this many elements a block's work is shorter than a thread hand-off (~50 µs).
MIN_ELEMENTS = 1 << 18

_ENV = ("MINICON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_state = {"threads": None, "pool": None}


def _default_threads() -> int:
    for name in _ENV:
        value = os.environ.get(name, "").split(",")[0].strip()  # OpenMP allows "4,2" (nested)
        if not value:
            continue
        if value.isdigit() and int(value) > 0:
            return int(value)
        warnings.warn(f"{name}={value!r} is not a positive integer; minicon ignores it",
                      RuntimeWarning, stacklevel=3)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def num_threads() -> int:
    """Threads that :func:`over_batch` splits work over (BLAS keeps its own setting)."""
    if _state["threads"] is None:
        _state["threads"] = _default_threads()
    return _state["threads"]


def set_num_threads(count: int) -> None:
    """Use ``count`` threads for minicon's own elementwise kernels from now on.

    Raises
    ------
    ValueError
        If ``count`` is not a positive int.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"set_num_threads: count must be a positive int, got {count!r}")
    if count != _state["threads"] and _state["pool"] is not None:
        _state["pool"].shutdown()
        _state["pool"] = None
    _state["threads"] = count


def over_batch(xp, x, body) -> list:
    """Call ``body(s)`` for contiguous blocks ``s`` of x's first axis, on several threads at once.

    Parameters
    ----------
    xp : module
        The array module of x (NumPy splits; CuPy runs one block).
    x : array
        Sets the first-axis length and the amount of work (``x.size``).
    body : callable
        ``body(s) -> result`` with ``s`` a ``slice`` (or ``Ellipsis`` for a
        single block): it must touch only ``a[s]`` of every array it writes.

    Returns
    -------
    list
        ``body``'s results in block order (one entry when not split), e.g.
        per-block partial sums for the caller to add up.
    """
    threads = num_threads()
    if xp is not numpy or x.ndim == 0 or threads == 1 or x.size < 2 * MIN_ELEMENTS:
        return [body(Ellipsis)]
    n = x.shape[0]
    blocks = min(threads, n, x.size // MIN_ELEMENTS)
    if blocks < 2:
        return [body(Ellipsis)]
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="minicon")
    bounds = [n * i // blocks for i in range(blocks + 1)]
    slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]
    # The calling thread takes the first block instead of waiting idle.
    futures = [_state["pool"].submit(body, s) for s in slices[1:]]
    try:
        first = body(slices[0])
    finally:
        wait(futures)  # never return (or raise) while another block still writes
    return [first] + [f.result() for f in futures]
