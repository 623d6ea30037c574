"""over_batch: blocks cover the batch once, in order; thread settings; ReLU split over threads."""

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicon
from minicon import Tensor, gradcheck, parallel, to_host

from .conftest import forced_blocks


@pytest.mark.parametrize("n, threads", [(2, 3), (3, 3), (7, 3), (10, 4), (5, 2)])
def test_blocks_cover_the_first_axis_once_in_order(n, threads):
    x = np.zeros((n, 4))
    with forced_blocks(threads):
        seen = parallel.over_batch(np, x, lambda s: (s, threading.get_ident()))
    slices = [s for s, _ in seen]
    assert len(slices) == min(n, threads)
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start and a.start < a.stop for a, b in itertools.pairwise(slices))
    caller = threading.get_ident()
    assert seen[0][1] == caller and all(ident != caller for _, ident in seen[1:])  # pool threads


def test_small_arrays_cupy_and_one_thread_run_one_block():
    big = np.zeros((8, 2 * parallel.MIN_ELEMENTS // 8))
    assert parallel.over_batch(np, np.zeros((8, 100)), lambda s: s) == [Ellipsis]
    assert parallel.over_batch(np, np.float32(3.0), lambda s: s) == [Ellipsis]
    assert parallel.over_batch(object(), big, lambda s: s) == [Ellipsis]  # any xp but NumPy: one block
    saved = parallel.num_threads()
    try:
        parallel.set_num_threads(1)
        assert parallel.over_batch(np, big, lambda s: s) == [Ellipsis]
        parallel.set_num_threads(2)
        assert len(parallel.over_batch(np, big, lambda s: s)) == 2
    finally:
        parallel.set_num_threads(saved)


def test_an_error_in_a_block_is_raised_after_every_block_finished():
    finished = []

    def body(s):
        if s.start == 0:
            raise RuntimeError("block 0 failed")
        threading.Event().wait(0.05)
        finished.append(s)

    with forced_blocks(3), pytest.raises(RuntimeError, match="block 0 failed"):
        parallel.over_batch(np, np.zeros((6, 1)), body)
    assert len(finished) == 2


def test_thread_count_settings(monkeypatch):
    for name in parallel._ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5,2")  # nested OpenMP: the outer count
    assert parallel._default_threads() == 5
    monkeypatch.setenv("MINICON_NUM_THREADS", "lots")
    with pytest.warns(RuntimeWarning, match="MINICON_NUM_THREADS='lots' is not a positive integer"):
        assert parallel._default_threads() == 5
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: count must be a positive int"):
            parallel.set_num_threads(bad)


@given(shape=st.sampled_from([(2, 3), (5, 2, 3, 3), (7, 1)]), seed=st.integers(0, 2**32 - 1))
def test_relu_in_blocks_equals_one_block_and_passes_gradcheck(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    x[0] = 0.0  # the kink: gradient 0 in both
    g = np.random.default_rng(seed + 1).standard_normal(shape)
    results = []
    for blocks in (False, True):
        with forced_blocks(threads=3 if blocks else 1):
            xt = Tensor(x, requires_grad=True)
            out = minicon.relu(xt)
            out.backward(g)
            results.append((to_host(out.data), to_host(xt.grad)))
            if blocks:
                gradcheck(minicon.relu, Tensor(x + np.sign(x) * 0.1 + (x == 0) * 0.1, requires_grad=True))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][0], np.maximum(x, 0))
    np.testing.assert_array_equal(results[0][1], g * (x > 0))
