"""kNN monitor against a brute-force loop, and the collapse diagnostics' closed forms."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicon import Tensor
from minicon.evaluate import (
    alignment,
    effective_rank,
    embedding_std,
    knn_accuracy,
    positive_negative_similarity,
    uniformity,
)


def knn_reference(train, train_y, test, test_y, k, temperature):
    """Plain-Python weighted kNN: rank only the classes that got a vote, ties to the lower class."""
    unit = lambda v: v / np.sqrt(sum(x * x for x in v))  # noqa: E731
    train = [unit(v) for v in train]
    hits1 = hits5 = 0
    for x, y in zip(test, test_y):
        x = unit(x)
        sims = [float(sum(a * b for a, b in zip(x, v))) for v in train]
        nearest = sorted(range(len(train)), key=lambda i: -sims[i])[:k]
        scores = {}
        for i in nearest:
            label = int(train_y[i])
            scores[label] = scores.get(label, 0.0) + math.exp(sims[i] / temperature)
        ranking = sorted(scores, key=lambda c: (-scores[c], c))
        hits1 += ranking[0] == y
        hits5 += y in ranking[:5]
    return {"top1": hits1 / len(test), "top5": hits5 / len(test)}


@st.composite
def knn_problems(draw):
    n, m = draw(st.integers(1, 30)), draw(st.integers(1, 10))
    d, c = draw(st.integers(2, 5)), draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # continuous draws: no two similarities (or class scores) tie
    return dict(
        train=rng.normal(size=(n, d)), train_y=rng.integers(0, c, n),
        test=rng.normal(size=(m, d)), test_y=rng.integers(0, c, m),
        k=draw(st.integers(1, n)), temperature=draw(st.floats(0.05, 1.0)),
        batch_size=draw(st.integers(1, 12)),
    )


@settings(max_examples=40)
@given(knn_problems())
def test_knn_matches_brute_force(xp, problem):
    want = knn_reference(problem["train"], problem["train_y"], problem["test"],
                         problem["test_y"], problem["k"], problem["temperature"])
    got = knn_accuracy(xp.asarray(problem["train"]), xp.asarray(problem["train_y"]),
                       xp.asarray(problem["test"]), xp.asarray(problem["test_y"]),
                       k=problem["k"], temperature=problem["temperature"],
                       batch_size=problem["batch_size"])
    assert got == want


def clusters(rng, classes, per_class, dim, noise):
    centres = np.eye(dim)[:classes] * 5.0
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def test_separable_clusters_score_one(xp):
    rng = np.random.default_rng(0)
    train, train_y = clusters(rng, 6, 40, 8, 0.3)
    test, test_y = clusters(rng, 6, 10, 8, 0.3)
    got = knn_accuracy(xp.asarray(train, dtype=xp.float32), xp.asarray(train_y),
                       xp.asarray(test, dtype=xp.float32), test_y, k=20)
    assert got == {"top1": 1.0, "top5": 1.0}


def test_classes_without_votes_never_count_toward_top5(xp):
    # one test point of class 0 whose only neighbour (k = 1) is of class 9: classes 0-8 all
    # score 0, and a plain sort would put class 0 in the top 5
    train = xp.asarray([[1.0, 0.0], [0.0, 1.0]])
    train_y = xp.asarray([9, 3])
    test, test_y = xp.asarray([[1.0, 0.1]]), xp.asarray([0])
    got = knn_accuracy(train, train_y, test, test_y, k=1, num_classes=10)
    assert got == {"top1": 0.0, "top5": 0.0}
    # the same holds with k >= 5 when the neighbours come from fewer than 5 classes
    train = xp.asarray([[1.0, 0.0]] * 6)
    train_y = xp.asarray([9] * 6)
    assert knn_accuracy(train, train_y, test, test_y, k=6, num_classes=10)["top5"] == 0.0


def test_temperature_decides_between_near_and_many(xp):
    # one very close neighbour of class 0 against three farther ones of class 1
    train = xp.asarray([[1.0, 0.0], [0.8, 0.6], [0.8, 0.6], [0.8, 0.6]])
    train_y, test, test_y = xp.asarray([0, 1, 1, 1]), xp.asarray([[1.0, 0.0]]), xp.asarray([0])
    # weights e^{1/τ} vs 3 e^{0.8/τ}: class 0 wins iff τ < 0.2 / ln 3 = 0.182
    assert knn_accuracy(train, train_y, test, test_y, k=4, temperature=0.1)["top1"] == 1.0
    assert knn_accuracy(train, train_y, test, test_y, k=4, temperature=0.3)["top1"] == 0.0


def test_knn_is_invariant_to_batching_scale_and_tensors(xp):
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(200, 16)), rng.normal(size=(37, 16))
    train_y, test_y = rng.integers(0, 10, 200), rng.integers(0, 10, 37)
    want = knn_accuracy(xp.asarray(train), train_y, xp.asarray(test), test_y, k=15, batch_size=37)
    scaled = test * rng.uniform(0.1, 10.0, size=(37, 1))
    for batch_size in (1, 5, 36, 1000):
        got = knn_accuracy(Tensor(xp.asarray(train)), train_y, Tensor(xp.asarray(scaled)),
                           test_y, k=15, batch_size=batch_size)
        assert got == want


def test_knn_rejects_bad_input(xp):
    train, test = xp.ones((5, 3)), xp.ones((2, 3))
    y5, y2 = xp.zeros(5, dtype=xp.int64), xp.zeros(2, dtype=xp.int64)
    cases = [
        (dict(k=6), "k=6"),
        (dict(k=0), "k must be"),
        (dict(temperature=0.0), "temperature"),
        (dict(batch_size=0), "batch_size"),
        (dict(num_classes=0), "num_classes"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            knn_accuracy(train, y5, test, y2, **{"k": 1, **kwargs})
    with pytest.raises(ValueError, match="width"):
        knn_accuracy(train, y5, xp.ones((2, 4)), y2, k=1)
    with pytest.raises(ValueError, match="test_labels"):
        knn_accuracy(train, y5, test, y5, k=1)
    with pytest.raises(ValueError, match="train_labels"):
        knn_accuracy(train, xp.zeros(5), test, y2, k=1)
    with pytest.raises(ValueError, match="num_classes"):
        knn_accuracy(train, y5 + 3, test, y2, k=1, num_classes=3)
    with pytest.raises(ValueError, match="2-D"):
        knn_accuracy(xp.ones(5), y5, test, y2, k=1)


# --- diagnostics ----------------------------------------------------------------------------


def random_orthonormal(rng, n):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q


def test_alignment_closed_forms(xp):
    rng = np.random.default_rng(0)
    z = xp.asarray(rng.normal(size=(8, 5)))
    assert alignment(z, z) == 0.0
    assert alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-12)  # normalized first
    assert alignment(z, -z) == pytest.approx(4.0)  # antipodal: |2 u|^2
    e1, e2 = xp.asarray([[1.0, 0.0]]), xp.asarray([[0.0, 1.0]])
    assert alignment(e1, e2) == pytest.approx(2.0)
    assert alignment(e1, e2, alpha=1) == pytest.approx(math.sqrt(2))


@settings(max_examples=15)
@given(st.integers(2, 12), st.integers(1, 6), st.floats(0.5, 5.0), st.integers(0, 2**32 - 1))
def test_uniformity_matches_pairwise_loop(xp, n, d, t, seed):
    z = np.random.default_rng(seed).normal(size=(n, d))
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    pairs = [math.exp(-t * float(np.sum((u[i] - u[j]) ** 2)))
             for i in range(n) for j in range(i + 1, n)]
    want = math.log(sum(pairs) / len(pairs))
    assert uniformity(xp.asarray(z), t=t) == pytest.approx(want, abs=1e-10)


def test_uniformity_closed_forms(xp):
    assert uniformity(xp.ones((6, 4))) == 0.0  # collapsed: every distance 0
    assert uniformity(xp.asarray([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)  # -t * 4
    assert uniformity(xp.eye(5), t=3.0) == pytest.approx(-6.0)  # orthonormal: distance^2 = 2


def test_effective_rank_closed_forms(xp):
    rng = np.random.default_rng(0)
    collapsed = np.outer(rng.normal(size=50), rng.normal(size=8))
    assert effective_rank(xp.asarray(collapsed)) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(xp.asarray(random_orthonormal(rng, 7))) == pytest.approx(7.0)
    assert effective_rank(xp.asarray(5.0 * np.eye(6)[:4])) == pytest.approx(4.0)
    # sigma = (2, 1, 1): p = (1/2, 1/4, 1/4), H = 1.5 ln 2, erank = 2^1.5
    assert effective_rank(xp.asarray(np.diag([1.0, 2.0, 1.0]))) == pytest.approx(2**1.5)
    assert effective_rank(xp.zeros((3, 4))) == 0.0


def test_embedding_std(xp):
    assert embedding_std(xp.ones((10, 4))) == 0.0
    # columns of eye(2) are [1, 0] and [0, 1]: sample std 1/sqrt(2) each
    assert embedding_std(xp.eye(2)) == pytest.approx(1 / math.sqrt(2))
    # an isotropic Gaussian cloud sits near SimSiam's 1/sqrt(D)
    z = np.random.default_rng(0).normal(size=(4000, 16))
    assert embedding_std(xp.asarray(z)) == pytest.approx(1 / math.sqrt(16), rel=0.02)


def test_positive_negative_similarity(xp):
    rng = np.random.default_rng(0)
    q = random_orthonormal(rng, 6)
    assert positive_negative_similarity(xp.asarray(q), xp.asarray(2 * q)) == pytest.approx(
        {"positive": 1.0, "negative": 0.0}, abs=1e-12)
    collapsed = xp.ones((4, 3))
    assert positive_negative_similarity(collapsed, collapsed) == pytest.approx(
        {"positive": 1.0, "negative": 1.0})
    z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    u1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    u2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    s = u1 @ u2.T
    want = {"positive": float(np.mean(np.diag(s))),
            "negative": float(np.mean([s[i, j] for i in range(5) for j in range(5) if i != j]))}
    assert positive_negative_similarity(xp.asarray(z1), xp.asarray(z2)) == pytest.approx(want)


def test_diagnostics_read_tensors_without_changing_them(xp):
    z = Tensor(xp.asarray(np.random.default_rng(0).normal(size=(6, 3))), requires_grad=True)
    before = z.numpy().copy()
    values = [alignment(z, z), uniformity(z), effective_rank(z), embedding_std(z),
              *positive_negative_similarity(z, z).values()]
    assert all(type(v) is float for v in values)
    np.testing.assert_array_equal(z.numpy(), before)
    assert z.grad is None


@pytest.mark.parametrize("call,match", [
    (lambda xp: alignment(xp.ones((3, 2)), xp.ones((3, 3))), "same shape"),
    (lambda xp: alignment(xp.ones((3, 2)), xp.ones((3, 2)), alpha=0), "alpha"),
    (lambda xp: uniformity(xp.ones((1, 2))), "at least 2 rows"),
    (lambda xp: uniformity(xp.ones((3, 2)), t=-1.0), "t must be"),
    (lambda xp: effective_rank(xp.ones(3)), "2-D"),
    (lambda xp: embedding_std(xp.ones((1, 4))), "at least 2 rows"),
    (lambda xp: positive_negative_similarity(xp.ones((1, 2)), xp.ones((1, 2))), "at least 2 rows"),
])
def test_diagnostics_reject_bad_input(xp, call, match):
    with pytest.raises(ValueError, match=match):
        call(xp)
