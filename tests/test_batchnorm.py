"""batch_norm: train/eval semantics, running statistics, the fused backward, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon.functional as F
from minicon import Tensor, gradcheck, to_host

from .reference import batch_norm_naive


@st.composite
def bn_cases(draw):
    """(x, running_mean, running_var, weight, bias) for an N×C or N×C×H×W batch, N·H·W >= 2."""
    c = draw(st.integers(1, 4))
    if draw(st.booleans()):
        shape = (draw(st.integers(2, 6)), c)
    else:
        shape = (draw(st.integers(1, 3)), c, draw(st.integers(1, 4)), draw(st.integers(2, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    return x, rng.standard_normal(c), rng.uniform(0.5, 2, c), rng.standard_normal(c), rng.standard_normal(c)


def _leaf(xp, a):
    return Tensor(xp.asarray(a), requires_grad=True)


@given(case=bn_cases(), training=st.booleans(), momentum=st.sampled_from([0.1, 0.5, 1.0]))
def test_batch_norm_matches_per_channel_formula_and_updates_buffers(xp, case, training, momentum):
    x, rm, rv, w, b = case
    running_mean, running_var = xp.array(rm), xp.array(rv)  # copies: rm, rv are the reference
    out = F.batch_norm(Tensor(xp.asarray(x)), running_mean, running_var, Tensor(xp.asarray(w)),
                       Tensor(xp.asarray(b)), training, momentum=momentum, eps=1e-5)
    expected, new_mean, new_var = batch_norm_naive(x, rm, rv, w, b, training, momentum, 1e-5)
    np.testing.assert_allclose(to_host(out.data), expected, atol=1e-10)
    np.testing.assert_allclose(to_host(running_mean), new_mean, atol=1e-12)
    np.testing.assert_allclose(to_host(running_var), new_var, atol=1e-12)


@settings(max_examples=10)
@given(case=bn_cases(), training=st.booleans())
def test_batch_norm_gradcheck(xp, case, training):
    x, rm, rv, w, b = case

    def fn(x, w, b):
        # Fresh buffers per call: the finite differences must not see drifting running stats.
        return F.batch_norm(x, xp.array(rm), xp.array(rv), w, b, training)

    gradcheck(fn, _leaf(xp, x), _leaf(xp, w), _leaf(xp, b))


def test_batch_norm_without_affine_gradcheck(xp):
    x = _leaf(xp, np.random.default_rng(0).standard_normal((3, 2, 2, 3)))
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), x)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 3, 2)])
def test_fused_backward_equals_composition_of_primitive_ops(xp, shape):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3)
    g = xp.asarray(rng.standard_normal(shape))
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    param_shape = (1, 3) + (1,) * (len(shape) - 2)

    tx, tw, tb = _leaf(xp, x), _leaf(xp, w), _leaf(xp, b)
    mean = tx.mean(axis=axes, keepdims=True)
    centred = tx - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    composed = centred / (var + 1e-5).sqrt() * tw.reshape(param_shape) + tb.reshape(param_shape)
    composed.backward(g)

    fx, fw, fb = _leaf(xp, x), _leaf(xp, w), _leaf(xp, b)
    fused = F.batch_norm(fx, None, None, fw, fb, training=True)
    fused.backward(g)
    np.testing.assert_allclose(to_host(fused.data), to_host(composed.data), atol=1e-12)
    for ours, theirs in ((fx, tx), (fw, tw), (fb, tb)):
        np.testing.assert_allclose(to_host(ours.grad), to_host(theirs.grad), atol=1e-12)


def test_batch_norm_golden(xp):
    # Channel values 1 and 3: mean 2, biased variance 1, unbiased 2 (worked by hand, eps = 0).
    running_mean, running_var = xp.zeros(1), xp.ones(1)
    out = F.batch_norm(Tensor(xp.asarray([[1.0], [3.0]])), running_mean, running_var,
                       Tensor(xp.asarray([2.0])), Tensor(xp.asarray([1.0])), True, eps=0.0)
    np.testing.assert_allclose(to_host(out.data), [[-1.0], [3.0]])
    np.testing.assert_allclose(to_host(running_mean), [0.2])  # 0.9·0 + 0.1·2
    np.testing.assert_allclose(to_host(running_var), [1.1])  # 0.9·1 + 0.1·2
    out_eval = F.batch_norm(Tensor(xp.asarray([[1.0]])), running_mean, running_var,
                            Tensor(xp.asarray([2.0])), Tensor(xp.asarray([1.0])), False, eps=0.0)
    np.testing.assert_allclose(to_host(out_eval.data), [[2 * (1 - 0.2) / np.sqrt(1.1) + 1]])


def test_eval_uses_running_stats_and_leaves_them_alone(xp):
    rng = np.random.default_rng(2)
    x = xp.asarray(rng.standard_normal((4, 3, 2, 2)) + 5)
    running_mean, running_var = xp.asarray([1.0, 2.0, 3.0]), xp.asarray([4.0, 1.0, 0.25])
    out = F.batch_norm(Tensor(x), running_mean, running_var, None, None, False, eps=0.0)
    expected = (to_host(x) - np.array([1, 2, 3])[:, None, None]) / np.array([2, 1, 0.5])[:, None, None]
    np.testing.assert_allclose(to_host(out.data), expected, atol=1e-12)
    assert to_host(running_mean).tolist() == [1, 2, 3] and to_host(running_var).tolist() == [4, 1, 0.25]
    # One image alone gives the same rows as in the batch: eval does not look at the batch.
    single = F.batch_norm(Tensor(x[:1]), running_mean, running_var, None, None, False, eps=0.0)
    np.testing.assert_allclose(to_host(single.data), expected[:1], atol=1e-12)


def test_training_output_is_standardized_in_float32(xp):
    x = xp.asarray(np.random.default_rng(3).standard_normal((64, 4, 5, 5)) * 7 + 3, dtype=xp.float32)
    out = F.batch_norm(Tensor(x), xp.zeros(4, dtype=xp.float32), xp.ones(4, dtype=xp.float32),
                       None, None, True)
    y = to_host(out.data)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_tensor_buffers_are_updated_in_place(xp):
    running_mean, running_var = Tensor(xp.zeros(2)), Tensor(xp.ones(2))
    arrays = (running_mean.data, running_var.data)
    F.batch_norm(Tensor(xp.asarray([[0.0, 1.0], [2.0, 5.0]])), running_mean, running_var, training=True)
    assert running_mean.data is arrays[0] and running_var.data is arrays[1]
    np.testing.assert_allclose(to_host(running_mean.data), [0.1, 0.3])
    np.testing.assert_allclose(to_host(running_var.data), [0.9 + 0.2, 0.9 + 0.8])


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, training):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for running statistics")
    rng = np.random.default_rng(4)
    x, w, b, g = rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(shape)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    ours = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    our_buffers = (rm.copy(), rv.copy())
    F.batch_norm(ours[0], *our_buffers, ours[1], ours[2], training, 0.3, 1e-3).backward(g)
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    their_buffers = (torch.tensor(rm), torch.tensor(rv))
    out = torch.nn.functional.batch_norm(theirs[0], *their_buffers, theirs[1], theirs[2], training, 0.3, 1e-3)
    out.backward(torch.tensor(g))
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), atol=1e-10)
    for a, t in zip(our_buffers, their_buffers):
        np.testing.assert_allclose(a, t.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "shape, c, training, buffers, message",
    [
        ((2, 3, 4), 3, True, True, r"batch_norm: expected a 2-D .* got shape \(2, 3, 4\)"),
        ((4, 3), 2, True, True, r"batch_norm: weight must have shape \(3,\) for input shape \(4, 3\), got \(2,\)"),
        ((1, 3), 3, True, True, r"batch_norm: training needs more than one value per channel"),
        ((1, 3, 1, 1), 3, True, True, r"batch_norm: training needs more than one value per channel"),
        ((4, 3), 3, False, False, r"batch_norm: eval mode .* needs running_mean and running_var"),
    ],
)
def test_batch_norm_errors(xp, shape, c, training, buffers, message):
    stats = (xp.zeros(3), xp.ones(3)) if buffers else (None, None)
    with pytest.raises(ValueError, match=message):
        F.batch_norm(Tensor(xp.zeros(shape)), *stats, Tensor(xp.ones(c)), None, training)


def test_channels_last_input_gives_the_same_result(xp):
    # conv2d hands batch_norm channels-last memory; the values must not depend on the layout.
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((3, 4, 5, 2)), xp.asarray(rng.standard_normal((3, 4, 5, 2)))
    results = []
    for data in (xp.asarray(x), xp.ascontiguousarray(xp.asarray(x).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
        tx, tw = Tensor(data, requires_grad=True), _leaf(xp, np.arange(1.0, 5.0))
        out = F.batch_norm(tx, None, None, tw, None, True)
        out.backward(g)
        results.append([to_host(a) for a in (out.data, tx.grad, tw.grad)])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
