"""The contrastive losses: values against plain-Python loops, fused backward
against the composed ops and finite differences, invariances, closed-form
extremes, float32 stability and argument errors."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicon
from minicon import Tensor, gradcheck
from minicon.losses import (
    clip_loss,
    cosine_similarity,
    cross_entropy,
    info_nce,
    init_logit_scale,
    normalize,
    nt_xent,
    supcon,
)

from . import composed_losses as composed
from . import reference as ref


def param(xp, a, dtype=None):
    return Tensor(xp.asarray(a, dtype=dtype), requires_grad=True)


def const(xp, a, dtype=None):
    return Tensor(xp.asarray(a, dtype=dtype))


def host(t):
    return minicon.to_host(t.data if isinstance(t, Tensor) else t)


def embeddings(rng, n, d, scale=1.0):
    """Gaussian rows with norms spread over a factor 4 around ``scale`` (never near 0)."""
    return rng.standard_normal((n, d)) * scale * rng.uniform(0.5, 2.0, (n, 1))


temperatures = st.floats(0.1, 2.0)


@dataclass
class Case:
    """One drawn instance of a loss: the differentiable inputs (host float64 arrays),
    the fused and composed losses as functions of them, and the loop reference."""

    inputs: list
    fused: object
    composed: object
    reference: float


def draw_case(data, xp, name) -> Case:
    """Draw N, D, temperature, scale and values for loss ``name``; constants are closed over."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    n = data.draw(st.integers(2, 5), label="N")
    d = data.draw(st.integers(1, 5), label="D")
    scale = data.draw(st.floats(0.1, 10.0), label="scale")
    if name == "cross_entropy":
        logits = rng.uniform(-5, 5, (n, d + 1))
        targets = rng.integers(0, d + 1, n)
        return Case(
            [logits],
            lambda x: cross_entropy(x, xp.asarray(targets)),
            lambda x: composed.cross_entropy_composed(x, targets),
            ref.cross_entropy_loop(logits, targets),
        )
    tau = data.draw(temperatures, label="temperature")
    if name == "nt_xent":
        z1, z2 = embeddings(rng, n, d, scale), embeddings(rng, n, d, scale)
        return Case(
            [z1, z2],
            lambda a, b: nt_xent(a, b, tau),
            lambda a, b: composed.nt_xent_composed(a, b, tau),
            ref.nt_xent_loop(z1, z2, tau),
        )
    if name == "info_nce":
        n = data.draw(st.integers(1, 5), label="N for info_nce")
        q, k = embeddings(rng, n, d, scale), embeddings(rng, n, d, scale)
        queue = embeddings(rng, data.draw(st.integers(1, 6), label="K"), d)
        k_t, queue_t = const(xp, k), const(xp, queue)
        return Case(
            [q],
            lambda a: info_nce(a, k_t, queue_t, tau),
            lambda a: composed.info_nce_composed(a, k_t, queue_t, tau),
            ref.info_nce_loop(q, k, queue, tau),
        )
    if name == "clip":
        image, text = embeddings(rng, n, d, scale), embeddings(rng, n, d, scale)
        t = np.array(data.draw(st.floats(0.0, 4.5), label="logit_scale"))  # e^4.5 = 90: off the clamp
        reference = ref.clip_loss_loop(image, text, t)
        return Case([image, text, t], clip_loss, composed.clip_loss_composed, reference)
    if name == "supcon":
        m = data.draw(st.integers(2, 7), label="M")
        z = embeddings(rng, m, d, scale)
        labels = rng.integers(0, data.draw(st.integers(1, 4), label="classes"), m)
        return Case(
            [z],
            lambda a: supcon(a, xp.asarray(labels), tau),
            lambda a: composed.supcon_composed(a, labels, tau),
            ref.supcon_loop(z, labels, tau),
        )
    raise AssertionError(name)


LOSSES = ["cross_entropy", "nt_xent", "info_nce", "clip", "supcon"]


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_value_equals_double_loop_reference(xp, name, data):
    case = draw_case(data, xp, name)
    loss = case.fused(*(param(xp, a) for a in case.inputs))
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss.item(), case.reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_fused_backward_equals_composed_backward(xp, name, data):
    case = draw_case(data, xp, name)
    fused_inputs = [param(xp, a) for a in case.inputs]
    composed_inputs = [param(xp, a) for a in case.inputs]
    fused, reference = case.fused(*fused_inputs), case.composed(*composed_inputs)
    np.testing.assert_allclose(fused.item(), reference.item(), rtol=1e-10, atol=1e-12)
    g = data.draw(st.floats(-3.0, 3.0), label="upstream gradient")
    fused.backward(xp.asarray(g))
    reference.backward(xp.asarray(g))
    for f, c in zip(fused_inputs, composed_inputs):
        np.testing.assert_allclose(host(f.grad), host(c.grad), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_fused_backward_equals_finite_differences(xp, name, data):
    case = draw_case(data, xp, name)
    assert gradcheck(case.fused, *(param(xp, a) for a in case.inputs))


# Invariances ---------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(1, 5), tau=temperatures)
def test_nt_xent_is_symmetric_in_the_two_views(xp, seed, n, d, tau):
    rng = np.random.default_rng(seed)
    z1, z2 = const(xp, embeddings(rng, n, d)), const(xp, embeddings(rng, n, d))
    np.testing.assert_allclose(nt_xent(z1, z2, tau).item(), nt_xent(z2, z1, tau).item(), rtol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(1, 5))
def test_clip_loss_is_symmetric_in_image_and_text(xp, seed, n, d):
    rng = np.random.default_rng(seed)
    a, b, t = const(xp, embeddings(rng, n, d)), const(xp, embeddings(rng, n, d)), const(xp, 2.0)
    np.testing.assert_allclose(clip_loss(a, b, t).item(), clip_loss(b, a, t).item(), rtol=1e-12)


def _losses_of(xp, rng, n, d, tau, permute=False, rescale=False):
    """Every loss on one random batch; ``permute`` reorders the batch consistently (and
    the queue, on its own), ``rescale`` multiplies every row by its own factor in 1e-3 … 1e3."""
    z1, z2, k = (embeddings(rng, n, d) for _ in range(3))
    queue = embeddings(rng, 7, d)
    logits, labels, targets = rng.standard_normal((n, 4)), rng.integers(0, 3, n), rng.integers(0, 4, n)
    perm, queue_perm = np.arange(n), np.arange(7)
    if permute:
        perm, queue_perm = rng.permutation(n), rng.permutation(7)
    if rescale:
        z1, z2, k, queue = (x * 10.0 ** rng.uniform(-3, 3, (len(x), 1)) for x in (z1, z2, k, queue))
    T = lambda a: const(xp, a)  # noqa: E731
    return np.array([
        nt_xent(T(z1[perm]), T(z2[perm]), tau).item(),
        info_nce(T(z1[perm]), T(k[perm]), T(queue[queue_perm]), tau).item(),
        clip_loss(T(z1[perm]), T(z2[perm]), T(1.5)).item(),
        supcon(T(z1[perm]), xp.asarray(labels[perm]), tau).item(),
        cross_entropy(T(logits[perm]), xp.asarray(targets[perm])).item(),
    ])


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(1, 5), tau=temperatures)
def test_permuting_the_batch_consistently_leaves_every_loss_unchanged(xp, seed, n, d, tau):
    before = _losses_of(xp, np.random.default_rng(seed), n, d, tau)
    after = _losses_of(xp, np.random.default_rng(seed), n, d, tau, permute=True)
    np.testing.assert_allclose(after, before, rtol=1e-10)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(1, 5), tau=temperatures)
def test_scaling_embeddings_leaves_normalized_losses_unchanged(xp, seed, n, d, tau):
    before = _losses_of(xp, np.random.default_rng(seed), n, d, tau)
    after = _losses_of(xp, np.random.default_rng(seed), n, d, tau, rescale=True)
    np.testing.assert_allclose(after, before, rtol=1e-9)


# Known extremes: aligned positives, orthogonal negatives --------------------


@pytest.mark.parametrize("n, tau", [(2, 0.5), (4, 0.1), (8, 1.0)])
def test_nt_xent_closed_form_for_aligned_positives_and_orthogonal_negatives(xp, n, tau):
    e = np.eye(n) * 3.0  # pair i is the basis vector e_i in both views
    # ℓ = -log(e^{1/τ} / (e^{1/τ} + (2N - 2) e^0)) for every anchor
    expected = math.log1p((2 * n - 2) * math.exp(-1 / tau))
    loss = nt_xent(const(xp, e), const(xp, e), tau)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12, atol=1e-14)  # atol: lse - S_pos cancels


@pytest.mark.parametrize("n, k, tau", [(1, 1, 0.2), (3, 5, 0.07), (4, 4, 1.0)])
def test_info_nce_closed_form_for_aligned_key_and_orthogonal_queue(xp, n, k, tau):
    basis = np.eye(n + k)
    q = const(xp, basis[:n] * 2.0)
    expected = math.log1p(k * math.exp(-1 / tau))
    loss = info_nce(q, const(xp, basis[:n]), const(xp, basis[n:]), tau)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n, t", [(2, math.log(1 / 0.07)), (5, 0.0), (3, 6.0)])
def test_clip_loss_closed_form_for_aligned_pairs(xp, n, t):
    e = const(xp, np.eye(n))
    s = min(math.exp(t), 100.0)  # t = 6 is clamped to 100
    expected = math.log1p((n - 1) * math.exp(-s))
    np.testing.assert_allclose(clip_loss(e, e, const(xp, t)).item(), expected, rtol=1e-12, atol=1e-14)


def test_supcon_closed_form_for_collapsed_classes(xp):
    sizes, tau = [3, 2, 4], 0.1
    labels = np.repeat(np.arange(3), sizes)
    z = np.eye(3)[labels]  # each class collapsed onto its own axis
    m = len(labels)
    # anchor of a class of size c: c-1 positives at 1/τ, M-c negatives at 0
    per_class = [math.log((c - 1) * math.exp(1 / tau) + (m - c)) - 1 / tau for c in sizes]
    expected = sum(c * l for c, l in zip(sizes, per_class)) / m
    loss = supcon(const(xp, z), xp.asarray(labels), tau)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12, atol=1e-14)


def test_uniform_similarities_give_log_of_the_number_of_candidates(xp):
    z = const(xp, np.ones((4, 3)))  # every cosine is 1: the softmax is uniform
    np.testing.assert_allclose(nt_xent(z, z, 0.3).item(), math.log(7), rtol=1e-12)
    loss = info_nce(z, z, const(xp, np.ones((5, 3))), 0.3)
    np.testing.assert_allclose(loss.item(), math.log(6), rtol=1e-12)


# SupCon specifics ------------------------------------------------------------


def test_supcon_anchors_without_positives_contribute_zero_and_are_not_counted(xp):
    rng = np.random.default_rng(0)
    z = param(xp, embeddings(rng, 4, 3))
    labels = xp.asarray([0, 1, 1, 2])  # anchors 0 and 3 have no positive
    loss = supcon(z, labels, 0.5)
    loss.backward()
    assert np.isfinite(host(z.grad)).all()
    zh = ref.normalize_loop(host(z))
    # only anchors 1 and 2 have terms; the mean is over those two
    by_hand = 0.0
    for i, p in ((1, 2), (2, 1)):
        others = [ref._dot(zh[i], zh[a]) / 0.5 for a in range(4) if a != i]
        by_hand += ref._logsumexp(others) - ref._dot(zh[i], zh[p]) / 0.5
    np.testing.assert_allclose(loss.item(), by_hand / 2, rtol=1e-12)


def test_supcon_without_any_positive_is_zero_with_zero_gradient(xp):
    z = param(xp, np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    loss = supcon(z, xp.arange(5), 0.1)  # every label distinct; self is not a positive
    loss.backward()
    assert loss.item() == 0.0
    assert not host(z.grad).any()


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 5), d=st.integers(1, 4), tau=temperatures)
def test_supcon_with_pair_labels_is_nt_xent(xp, seed, n, d, tau):
    """[z1; z2] with labels [0..N-1, 0..N-1]: the only positive of i is its other view."""
    rng = np.random.default_rng(seed)
    z1, z2 = param(xp, embeddings(rng, n, d)), param(xp, embeddings(rng, n, d))
    z = param(xp, np.concatenate([host(z1), host(z2)]))
    a = nt_xent(z1, z2, tau)
    b = supcon(z, xp.tile(xp.arange(n), 2), tau)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)
    a.backward()
    b.backward()
    stacked = np.concatenate([host(z1.grad), host(z2.grad)])
    np.testing.assert_allclose(host(z.grad), stacked, rtol=1e-10, atol=1e-14)


# InfoNCE and CLIP specifics ----------------------------------------------------


def test_info_nce_sends_no_gradient_to_keys_or_queue(xp):
    rng = np.random.default_rng(0)
    q, k, queue = (param(xp, embeddings(rng, n, 3)) for n in (4, 4, 6))
    info_nce(q, k, queue).backward()
    assert q.grad is not None and np.abs(host(q.grad)).sum() > 0
    assert k.grad is None and queue.grad is None


def test_info_nce_positive_is_a_column_when_n_equals_k(xp):
    """N = K is where an (N,) positive would broadcast silently against the N×K block."""
    rng = np.random.default_rng(1)
    q, k, queue = (embeddings(rng, 3, 4) for _ in range(3))
    loss = info_nce(const(xp, q), const(xp, k), const(xp, queue), 0.2)
    np.testing.assert_allclose(loss.item(), ref.info_nce_loop(q, k, queue, 0.2), rtol=1e-12)


def test_init_logit_scale_is_log_of_one_over_0_07_and_learnable(xp):
    t = init_logit_scale()
    assert t.shape == () and t.dtype == np.float32 and t.requires_grad
    np.testing.assert_allclose(t.item(), math.log(1 / 0.07), rtol=1e-6)
    np.testing.assert_allclose(init_logit_scale(0.5).item(), math.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("t_value, clamped", [(math.log(100) + 0.1, True), (7.0, True), (2.0, False)])
def test_clip_logit_scale_gradient_is_zero_exactly_when_clamped(xp, t_value, clamped):
    rng = np.random.default_rng(0)
    image, text = param(xp, embeddings(rng, 4, 3)), param(xp, embeddings(rng, 4, 3))
    t = param(xp, [t_value])  # shape (1,) works too; its gradient keeps that shape
    loss = clip_loss(image, text, t)
    loss.backward()
    assert t.grad.shape == (1,)
    np.testing.assert_allclose(loss.item(), ref.clip_loss_loop(host(image), host(text), t_value), rtol=1e-12)
    assert (host(t.grad)[0] == 0.0) == clamped
    assert np.abs(host(image.grad)).sum() > 0  # the embeddings still learn at the clamp


# Normalize and cosine similarity ------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), d=st.integers(1, 5), axis=st.sampled_from([0, -1])
)
def test_normalize_values_and_gradient(xp, seed, n, d, axis):
    x = embeddings(np.random.default_rng(seed), n, d)
    y = normalize(param(xp, x), axis=axis)
    expected = np.array(ref.normalize_loop(x)) if axis == -1 else np.array(ref.normalize_loop(x.T)).T
    np.testing.assert_allclose(host(y), expected, rtol=1e-12)
    w = const(xp, np.random.default_rng(seed + 1).standard_normal((n, d)))
    assert gradcheck(lambda t: normalize(t, axis=axis) * w, param(xp, x))


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), d=st.integers(1, 5))
def test_cosine_similarity_values_and_gradient(xp, seed, n, d):
    rng = np.random.default_rng(seed)
    a, b = embeddings(rng, n, d), embeddings(rng, n, d)
    expected = [ref._dot(u, v) for u, v in zip(ref.normalize_loop(a), ref.normalize_loop(b))]
    np.testing.assert_allclose(host(cosine_similarity(param(xp, a), param(xp, b))), expected, rtol=1e-12)
    assert gradcheck(cosine_similarity, param(xp, a), param(xp, b))


def test_zero_vectors_normalize_to_zero_with_finite_gradient_in_float32(xp):
    x = param(xp, [[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]], dtype=np.float32)
    y = normalize(x)
    np.testing.assert_array_equal(host(y), np.array([[0, 0, 0], [0.6, 0, 0.8]], np.float32))
    cos = cosine_similarity(x, const(xp, [[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(host(cos), [0.0, 0.0])
    cos.sum().backward()
    assert np.isfinite(host(x.grad)).all() and y.dtype == np.float32


@pytest.mark.parametrize("norm", [1e-30, 1e-6, 1e19, 1e30])
def test_normalize_is_exact_for_huge_and_small_norms_in_float32(xp, norm):
    x = np.array([[3.0, 4.0]]) / 5 * norm
    y = host(normalize(const(xp, x, dtype=np.float32)))
    expected = [[0.6, 0.8]] if norm > 1e-12 else x / 1e-12  # below eps: divided by eps
    np.testing.assert_allclose(y, expected, rtol=1e-6)


# Float32 stability ------------------------------------------------------------


def _extreme_inputs(rng, n, d):
    """Rows whose norms span 1e-30 … 1e30, one all-zero row."""
    z = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-30, 30, (n, 1))
    z[0] = 0.0
    return z.astype(np.float32)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(1, 6))
@settings(max_examples=10)
def test_float32_at_temperature_0_01_with_any_norm_has_no_inf_or_nan(xp, seed, n, d):
    rng = np.random.default_rng(seed)
    a, b, c = (param(xp, _extreme_inputs(rng, n, d)) for _ in range(3))
    logits = param(xp, rng.uniform(-1e4, 1e4, (n, d)), np.float32)  # exp(1e4) is inf in float32
    losses = [
        nt_xent(a, b, 0.01),
        info_nce(a, const(xp, host(b)), const(xp, _extreme_inputs(rng, 5, d)), 0.01),
        clip_loss(a, b, param(xp, np.float32(math.log(100)))),
        supcon(c, xp.asarray(rng.integers(0, 2, n)), 0.01),
        cross_entropy(logits, xp.zeros(n, int)),
    ]
    for loss in losses:
        assert loss.dtype == np.float32 and np.isfinite(loss.item())
        loss.backward()
    for t in (a, b, c, logits):
        assert t.grad.dtype == np.float32 and np.isfinite(host(t.grad)).all()


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), d=st.integers(2, 6))
@settings(max_examples=10)
def test_float32_at_temperature_0_01_matches_float64_reference(xp, seed, n, d):
    rng = np.random.default_rng(seed)
    z1, z2 = embeddings(rng, n, d, 1e6), embeddings(rng, n, d, 1e-6)
    loss = nt_xent(const(xp, z1, np.float32), const(xp, z2, np.float32), 0.01).item()
    expected = ref.nt_xent_loop(z1.astype(np.float32), z2.astype(np.float32), 0.01)
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-3)  # logits up to 100, float32 eps 6e-8


# Argument errors ---------------------------------------------------------------


def test_bad_temperature_is_a_value_error_naming_it(xp):
    z = const(xp, np.ones((3, 2)))
    for bad in (0.0, -0.5, float("nan"), float("inf"), "0.1"):
        for call in (
            lambda: nt_xent(z, z, bad),
            lambda: info_nce(z, z, z, bad),
            lambda: supcon(z, xp.zeros(3, int), bad),
            lambda: init_logit_scale(bad),
        ):
            with pytest.raises(ValueError, match="temperature must be"):
                call()


def test_too_few_pairs_is_a_value_error_naming_the_argument(xp):
    one = const(xp, np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"nt_xent: z1 needs at least 2 rows .* got shape \(1, 3\)"):
        nt_xent(one, one)
    with pytest.raises(ValueError, match=r"clip_loss: image_emb needs at least 2 rows"):
        clip_loss(one, one, const(xp, 1.0))
    with pytest.raises(ValueError, match=r"supcon: z needs at least 2 rows"):
        supcon(one, xp.zeros(1, int))
    with pytest.raises(ValueError, match=r"info_nce: queue needs at least 1 rows"):
        info_nce(one, one, const(xp, np.ones((0, 3))))


def test_mismatched_shapes_are_value_errors_naming_both(xp):
    a, b = const(xp, np.ones((4, 3))), const(xp, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"nt_xent: z1 and z2 must have the same shape, got \(4, 3\) and \(4, 2"):
        nt_xent(a, b)
    with pytest.raises(ValueError, match=r"info_nce: q and k must have the same shape"):
        info_nce(a, b, a)
    with pytest.raises(ValueError, match=r"info_nce: queue must be \(K, D\) with q's D = 3, got queue \(4, 2"):
        info_nce(a, a, b)
    with pytest.raises(ValueError, match=r"clip_loss: image_emb and text_emb must have the same shape"):
        clip_loss(a, b, const(xp, 1.0))
    with pytest.raises(ValueError, match=r"clip_loss: logit_scale must be a one-element tensor"):
        clip_loss(a, a, const(xp, [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"supcon: labels must have shape \(4,\)"):
        supcon(a, xp.zeros(3, int))
    with pytest.raises(ValueError, match=r"nt_xent: z1 must be a 2-D \(N, D\) matrix, got shape \(4,\)"):
        nt_xent(const(xp, np.ones(4)), const(xp, np.ones(4)))
    with pytest.raises(ValueError, match="cosine_similarity: shapes"):
        cosine_similarity(a, b)


def test_bad_targets_and_eps_are_value_errors(xp):
    logits = const(xp, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy: targets must lie in \[0, 4\)"):
        cross_entropy(logits, xp.asarray([0, 4, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: targets must be integer class indices of shape \(3"):
        cross_entropy(logits, xp.asarray([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"cross_entropy: targets must be integer .* shape \(2,\)"):
        cross_entropy(logits, xp.asarray([0, 1]))
    with pytest.raises(ValueError, match="normalize: eps must be > 0"):
        normalize(logits, eps=0.0)


# cross-entropy at any magnitude: the loss is formed from shifted logits (issue 17)

def _check_cross_entropy_against_float64(xp, logits, targets, dtype):
    x = param(xp, logits, dtype)
    loss = cross_entropy(x, xp.asarray(targets))
    loss.backward()
    values = host(x.data).astype(np.float64)  # the reference sees exactly the values the loss saw
    expected = ref.cross_entropy_loop(values, targets)
    grad = np.array([ref.softmax_loop(list(row)) for row in values])
    grad[np.arange(len(targets)), targets] -= 1
    grad /= len(targets)
    rtol = 1e-6 if dtype == np.float32 else 1e-13  # a few roundings of the loss's own size
    assert loss.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(loss.item(), expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(x.grad), grad, rtol=rtol, atol=rtol / len(targets))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1.0, 1e4, 1e8, 1e20, -1e8])
def test_cross_entropy_is_exact_for_equal_huge_logits(xp, dtype, magnitude):
    """All logits equal: the loss is log C and the gradient (1/C - onehot)/N, whatever their size."""
    n, classes = 3, 5
    _check_cross_entropy_against_float64(xp, np.full((n, classes), magnitude), np.array([0, 2, 4]), dtype)
    x = param(xp, np.full((n, classes), magnitude), dtype)
    assert cross_entropy(x, xp.asarray([0, 2, 4])).item() == pytest.approx(math.log(classes), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1e2, 1e8, 1e30])
def test_cross_entropy_is_exact_with_one_dominant_logit(xp, dtype, magnitude):
    """One logit far above the rest: loss 0 when it is the target, its margin over the target otherwise."""
    logits = np.zeros((2, 4))
    logits[:, 1] = magnitude
    _check_cross_entropy_against_float64(xp, logits, np.array([1, 3]), dtype)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5), classes=st.integers(2, 6),
       exponent=st.integers(0, 30), offset=st.sampled_from([0.0, 1e6, -1e8]))
@settings(max_examples=25)
def test_cross_entropy_matches_the_float64_reference_at_any_scale(xp, seed, n, classes, exponent, offset):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-1, 1, (n, classes)) * 10.0**exponent + offset
    targets = rng.integers(0, classes, n)
    for dtype in (np.float32, np.float64):
        _check_cross_entropy_against_float64(xp, logits, targets, dtype)
