"""linear, relu, flatten, dropout of minicon.functional."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon
import minicon.functional as F
from minicon import Tensor, gradcheck, to_host


def _leaf(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


@settings(max_examples=15)
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_matches_loops_and_gradcheck(xp, lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((*lead, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    inputs = [_leaf(xp, x), _leaf(xp, w)] + ([_leaf(xp, b)] if bias else [])
    out = F.linear(*inputs)
    rows = x.reshape(-1, n_in)
    expected = np.array([[sum(r[i] * w[o, i] for i in range(n_in)) + (b[o] if bias else 0)
                          for o in range(n_out)] for r in rows]).reshape(*lead, n_out)
    np.testing.assert_allclose(to_host(out.data), expected, atol=1e-12)
    gradcheck(F.linear, *inputs)


def test_linear_golden(xp):
    x, w, b = _leaf(xp, [[1.0, 2.0]]), _leaf(xp, [[1.0, 0.0], [3.0, -1.0], [0.5, 0.5]]), _leaf(xp, [0.0, 1.0, -1.0])
    out = F.linear(x, w, b)
    np.testing.assert_array_equal(to_host(out.data), [[1.0, 2.0, 0.5]])
    out.backward(xp.asarray([[1.0, 1.0, 2.0]]))
    np.testing.assert_array_equal(to_host(x.grad), [[5.0, 0.0]])
    np.testing.assert_array_equal(to_host(w.grad), [[1, 2], [1, 2], [2, 4]])
    np.testing.assert_array_equal(to_host(b.grad), [1, 1, 2])


def test_linear_errors(xp):
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) does not match weight of shape \(4, 2\)"):
        F.linear(Tensor(xp.zeros((2, 3))), Tensor(xp.zeros((4, 2))))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(4,\) .* got \(3,\)"):
        F.linear(Tensor(xp.zeros((2, 2))), Tensor(xp.zeros((4, 2))), Tensor(xp.zeros(3)))


def test_relu_is_the_primitive_op(xp):
    assert F.relu is minicon.relu
    out = F.relu(Tensor(xp.asarray([-1.0, 0.0, 2.0])))
    assert to_host(out.data).tolist() == [0.0, 0.0, 2.0]


def test_flatten(xp):
    x = _leaf(xp, np.arange(24.0).reshape(2, 3, 2, 2))
    assert F.flatten(x).shape == (2, 12)
    assert F.flatten(x, 0).shape == (24,)
    assert F.flatten(x, 1, 2).shape == (2, 6, 2)
    out = F.flatten(x)
    np.testing.assert_array_equal(to_host(out.data)[1], np.arange(12.0, 24.0))
    out.backward(xp.asarray(np.arange(24.0).reshape(2, 12)))
    np.testing.assert_array_equal(to_host(x.grad), np.arange(24.0).reshape(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"flatten: start_dim 3 comes after end_dim 1"):
        F.flatten(x, 3, 1)
    with pytest.raises(ValueError, match=r"flatten: start_dim 4 / end_dim -1 out of range"):
        F.flatten(x, 4)


def test_flatten_of_channels_last_conv_output_is_in_nchw_order(xp):
    # conv2d returns channels-last memory; flatten must still order values C, H, W as NCHW does.
    x = Tensor(xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 4))))
    out = F.conv2d(x, Tensor(xp.ones((5, 3, 1, 1))))
    np.testing.assert_array_equal(to_host(F.flatten(out).data), to_host(out.data).reshape(2, -1))


def test_dropout_train_scales_survivors_and_masks_the_gradient(xp):
    x = _leaf(xp, np.ones((200, 50)))
    out = F.dropout(x, p=0.25, training=True)
    y = to_host(out.data)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02  # 10,000 Bernoulli(0.75) draws: std 0.004
    out.backward(xp.ones(out.shape))
    np.testing.assert_array_equal(to_host(x.grad), y)


def test_dropout_gradcheck_with_a_fixed_mask(xp):
    def fn(x):
        minicon.manual_seed(3)  # the same mask on every call, so finite differences see one function
        return F.dropout(x, 0.4)

    gradcheck(fn, _leaf(xp, np.random.default_rng(0).standard_normal((4, 5))))


def test_dropout_eval_and_p_zero_are_identity_p_one_zeroes(xp):
    x = _leaf(xp, np.arange(6.0))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    out = F.dropout(x, 1.0, training=True)
    assert np.all(to_host(out.data) == 0)
    out.sum().backward()
    assert np.all(to_host(x.grad) == 0)


def test_dropout_is_reproducible_with_manual_seed_and_keeps_dtype(xp):
    x = Tensor(xp.ones((4, 8), dtype=xp.float32))
    minicon.manual_seed(7)
    a = to_host(F.dropout(x, 0.5).data)
    minicon.manual_seed(7)
    b = to_host(F.dropout(x, 0.5).data)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


def _splitmix64_reference(seed: int, count: int) -> list:
    """Element i of ``counter_uniform``, one Python int at a time (Steele et al. 2014)."""
    mask = (1 << 64) - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    start = mix(seed & mask)
    return [(mix((start + (i + 1) * 0x9E3779B97F4A7C15) & mask) >> 11) / 2.0**53 for i in range(count)]


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1, 123456789])
def test_counter_uniform_is_splitmix64_of_seed_and_index_on_both_backends(xp, seed):
    from minicon.functional.linear import counter_uniform

    got = to_host(counter_uniform(xp, (3, 5), seed))
    assert got.shape == (3, 5) and got.dtype == np.float64
    np.testing.assert_array_equal(got.ravel(), _splitmix64_reference(seed, 15))


def test_counter_uniform_is_uniform_and_nearby_seeds_are_unrelated():
    from minicon.functional.linear import counter_uniform

    u, v = counter_uniform(np, (200_000,), 41), counter_uniform(np, (200_000,), 42)
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002  # std 0.0006, 0.0002
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 19_000  # 20,000 ± 134 per bin
    for shift in (0, 1):  # seed + 1 is not the same stream moved by one element
        assert abs(np.corrcoef(u[shift:], v[: len(v) - shift])[0, 1]) < 0.01


def test_dropout_masks_repeat_after_restoring_the_host_generator_and_match_numpy(xp):
    # what a resume does: the checkpoint holds the host generator's state, and nothing else
    # may decide the masks (CuPy's own generator is not in the checkpoint)
    from minicon import backend

    x = Tensor(xp.ones((64, 32)))
    state = backend.host_rng().bit_generator.state
    first = to_host(F.dropout(x, 0.3).data)
    if minicon.get_backend() == "cupy":
        xp.random.seed(999)  # a different device generator state must not matter
    backend.host_rng().bit_generator.state = state
    np.testing.assert_array_equal(to_host(F.dropout(x, 0.3).data), first)
    minicon.set_backend("numpy")
    backend.host_rng().bit_generator.state = state
    np.testing.assert_array_equal(F.dropout(Tensor(np.ones((64, 32))), 0.3).data, first)


def test_dropout_rejects_bad_p(xp):
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(Tensor(xp.ones(3)), 1.5)


def _chain(x, w1, g1, b1, w2, lin):
    # The encoder's pattern: conv-BN-ReLU-maxpool, conv-BN-ReLU, global average pool, linear.
    h = F.max_pool2d(F.relu(F.batch_norm(F.conv2d(x, w1, None, 1, 1), None, None, g1, b1, True)), 2)
    h = F.relu(F.batch_norm(F.conv2d(h, w2, None, 2, 1), None, None, None, None, True))
    return F.linear(F.flatten(F.adaptive_avg_pool2d(h, 1)), lin)


def test_conv_bn_relu_pool_chain_gradcheck(xp):
    # Channels-last arrays flow from op to op here; the gradients must not notice.
    rng = np.random.default_rng(5)
    shapes = [(3, 2, 6, 6), (4, 2, 3, 3), (4,), (4,), (3, 4, 3, 3), (2, 3)]
    inputs = [_leaf(xp, rng.standard_normal(s)) for s in shapes]
    gradcheck(_chain, *inputs, atol=1e-5)


@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, Tensor(x.data[:2, :, :2, :2].copy()), None, 1, 1),
    lambda x: F.max_pool2d(x, 2, 1),
    lambda x: F.avg_pool2d(x, 3, 2, 1),
    lambda x: F.adaptive_avg_pool2d(x, 2),
    lambda x: F.batch_norm(x, None, None, None, None, True),
])
def test_backward_twice_adds_the_same_gradient(xp, op):
    # Saved arrays must survive a backward untouched: a second backward adds an equal gradient.
    rng = np.random.default_rng(6)
    x = _leaf(xp, rng.standard_normal((2, 3, 5, 5)))
    out = op(x)
    g = xp.asarray(rng.standard_normal(out.shape))
    out.backward(g)
    once = to_host(x.grad).copy()
    out.backward(g)
    np.testing.assert_allclose(to_host(x.grad), 2 * once, atol=1e-12)
