"""MemoryQueue: a ring buffer of normalized keys. Wrap-around and partial
batches against a key-by-key plain-Python queue, the MoCo order (logits of a
step use the queue before its keys are added), and argument errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicon
from minicon import Tensor
from minicon.losses import MemoryQueue, info_nce

from . import reference as ref


def host(t):
    return minicon.to_host(t.data if isinstance(t, Tensor) else t)


def test_starts_full_of_random_unit_vectors_reproducible_by_seed(xp):
    minicon.manual_seed(3)
    queue = MemoryQueue(dim=8, size=16)
    keys = queue.keys()
    assert keys.shape == (16, 8) and keys.dtype == np.float32 and not keys.requires_grad
    np.testing.assert_allclose(np.linalg.norm(host(keys), axis=1), 1.0, rtol=1e-6)
    assert queue.ptr == 0
    minicon.manual_seed(3)
    np.testing.assert_array_equal(host(MemoryQueue(8, 16).keys()), host(keys))
    minicon.manual_seed(4)
    assert not np.array_equal(host(MemoryQueue(8, 16).keys()), host(keys))


@given(
    size=st.integers(1, 7),
    dim=st.integers(1, 4),
    batch_sizes=st.lists(st.integers(0, 10), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_enqueue_equals_writing_keys_one_at_a_time(xp, size, dim, batch_sizes, seed):
    """Any batch sizes: partial batches, batches that wrap past the end, batches longer than K."""
    rng = np.random.default_rng(seed)
    queue = MemoryQueue(dim, size, dtype=np.float64)
    slots, ptr = host(queue.keys()).tolist(), 0
    for b in batch_sizes:
        batch = rng.standard_normal((b, dim)) * rng.uniform(0.1, 10.0)
        queue.enqueue(Tensor(xp.asarray(batch)))
        slots, ptr = ref.ring_buffer_loop(slots, ptr, [batch])
        assert queue.ptr == ptr
        np.testing.assert_allclose(host(queue.keys()), slots, rtol=1e-12, atol=1e-15)


def test_wrap_around_example(xp):
    queue = MemoryQueue(dim=2, size=5, dtype=np.float64)
    first = np.array([[1.0, 0], [2, 0], [3, 0]])
    second = np.array([[0, 1.0], [0, 2], [0, 3]])
    queue.enqueue(first)
    queue.enqueue(xp.asarray(second))  # slots 3, 4, then wraps to 0
    assert queue.ptr == 1
    np.testing.assert_array_equal(host(queue.keys()), [[0, 1], [1, 0], [1, 0], [0, 1], [0, 1]])


def test_partial_last_batch_and_oversized_batch(xp):
    queue = MemoryQueue(dim=1, size=4, dtype=np.float64)
    queue.enqueue(xp.asarray([[1.0], [1.0], [1.0]]))
    queue.enqueue(xp.asarray([[-1.0]]))  # a last, partial batch of one
    assert queue.ptr == 0
    np.testing.assert_array_equal(host(queue.keys())[:, 0], [1, 1, 1, -1])
    queue.enqueue(xp.asarray([[-2.0], [3.0], [-4.0], [5.0], [-6.0], [-7.0]]))  # B = 6 > K = 4
    assert queue.ptr == 2  # as if written one by one: 6 steps from slot 0
    np.testing.assert_array_equal(host(queue.keys())[:, 0], [-1, -1, -1, 1])  # -6, -7 wrapped over -2, 3


def test_enqueue_keeps_no_graph_and_normalizes(xp):
    keys = Tensor(xp.asarray([[3.0, 4.0]], dtype=np.float32), requires_grad=True) * 2.0
    queue = MemoryQueue(dim=2, size=3)
    queue.enqueue(keys)
    stored = queue.keys()
    assert not stored.requires_grad and stored.is_leaf
    np.testing.assert_allclose(host(stored)[0], [0.6, 0.8], rtol=1e-6)


def test_logits_of_a_step_use_the_queue_from_before_its_keys(xp):
    """MoCo order: loss with the current queue, then enqueue k, then backward.
    This step's k must not be among its own negatives, and enqueueing into the
    live buffer before backward must not change the gradient."""
    rng = np.random.default_rng(0)
    queue = MemoryQueue(dim=4, size=6, dtype=np.float64)
    before = host(queue.keys()).copy()
    q_np, k_np = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    q = Tensor(xp.asarray(q_np), requires_grad=True)
    loss = info_nce(q, Tensor(xp.asarray(k_np)), queue.keys(), 0.2)
    queue.enqueue(Tensor(xp.asarray(k_np)))
    loss.backward()
    np.testing.assert_allclose(loss.item(), ref.info_nce_loop(q_np, k_np, before, 0.2), rtol=1e-12)
    np.testing.assert_allclose(host(queue.keys())[:3], ref.normalize_loop(k_np), rtol=1e-12)

    untouched = Tensor(xp.asarray(q_np), requires_grad=True)
    info_nce(untouched, Tensor(xp.asarray(k_np)), Tensor(xp.asarray(before)), 0.2).backward()
    np.testing.assert_array_equal(host(q.grad), host(untouched.grad))


def test_keys_is_the_live_buffer(xp):
    """Documented: keys() is not a snapshot (enqueue writes in place)."""
    queue = MemoryQueue(dim=2, size=2, dtype=np.float64)
    view = queue.keys()
    queue.enqueue(xp.asarray([[0.0, 5.0]]))
    np.testing.assert_array_equal(host(view)[0], [0.0, 1.0])


def test_bad_arguments_are_value_errors_naming_them(xp):
    bad = (({"dim": 0, "size": 4}, "dim"), ({"dim": 4, "size": -1}, "size"), ({"dim": 2.5, "size": 4}, "dim"))
    for kwargs, name in bad:
        with pytest.raises(ValueError, match=f"MemoryQueue: {name} must be a positive integer"):
            MemoryQueue(**kwargs)
    queue = MemoryQueue(dim=3, size=4)
    with pytest.raises(ValueError, match=r"MemoryQueue.enqueue: keys must be \(B, 3\) .* got shape \(2, 4\)"):
        queue.enqueue(xp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        queue.enqueue(xp.ones(3))
