"""minicon.retrieval: exact search = brute force, faiss flat = exact, union-find groups, metrics, the benchmark."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minicon import backend
from minicon.retrieval import (
    ALTERATIONS,
    Index,
    UnionFind,
    auto_threshold,
    brute_force_top_k,
    group_pairs,
    mean_average_precision_at_k,
    near_duplicate_benchmark,
    near_duplicates,
    nearest_neighbour_similarity,
    pair_average_precision,
    pair_detection,
    precision_at_k,
    similar_pairs,
    top_k_inner_product,
)
from minicon.retrieval.faiss_search import faiss_available, faiss_top_k

# small integers: every product and sum is exact in float64, and ties are frequent
integer_matrices = st.integers(1, 5).flatmap(lambda d: st.tuples(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(d)), elements=st.integers(-2, 2)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.just(d)), elements=st.integers(-2, 2))))


def unit_rows(rng, n, d, dtype=np.float32):
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


# --- exact search ---------------------------------------------------------------------------

@given(integer_matrices, st.integers(1, 30), st.integers(1, 9))
def test_blocked_search_equals_brute_force_ties_included(matrices, k, block_size):
    queries, corpus = matrices
    k = min(k, len(corpus))
    scores, indices = top_k_inner_product(queries, corpus, k, block_size)
    want_scores, want_indices = brute_force_top_k(queries, corpus, k)
    np.testing.assert_array_equal(scores, want_scores)
    np.testing.assert_array_equal(indices, want_indices)  # equal scores: lowest row first, as the stable sort


def test_brute_force_reference_against_a_python_loop():
    rng = np.random.default_rng(0)
    q, c = rng.integers(-2, 3, (4, 3)).astype(float), rng.integers(-2, 3, (9, 3)).astype(float)
    _, indices = brute_force_top_k(q, c, 4)
    for m in range(4):
        ranked = sorted(range(9), key=lambda j: (-float(q[m] @ c[j]), j))
        assert indices[m].tolist() == ranked[:4]


def test_blocked_search_on_each_backend_in_float32(xp):
    rng = np.random.default_rng(1)
    q, c = unit_rows(rng, 50, 16), unit_rows(rng, 300, 16)
    scores, indices = top_k_inner_product(xp.asarray(q), xp.asarray(c), 7, block_size=32)
    want_s, want_i = brute_force_top_k(q, c, 7)
    np.testing.assert_allclose(backend.to_host(scores), want_s, atol=1e-6)
    np.testing.assert_array_equal(backend.to_host(indices), want_i)


def test_the_block_size_bounds_the_memory_and_not_the_result(monkeypatch):
    """Every GEMM is at most block × block: a 4-row tile gives the result of one 1,000 × 1,000 matrix."""
    rng = np.random.default_rng(2)
    q, c = unit_rows(rng, 37, 8), unit_rows(rng, 1000, 8)
    shapes = []
    real = top_k_inner_product.__globals__["_top_k_tile"]

    def spy(sim, k, offset):
        shapes.append(sim.shape)
        return real(sim, k, offset)

    monkeypatch.setitem(top_k_inner_product.__globals__, "_top_k_tile", spy)
    small = top_k_inner_product(q, c, 5, block_size=4)
    assert max(a * b for a, b in shapes) <= 16
    monkeypatch.undo()
    whole = top_k_inner_product(q, c, 5, block_size=4096)
    np.testing.assert_allclose(small[0], whole[0], atol=1e-6)
    np.testing.assert_array_equal(small[1], whole[1])


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k must be >= 1"), (dict(k=11), "k = 11 is more than the 10 rows"),
    (dict(block_size=0), "block_size must be >= 1"),
])
def test_search_arguments_are_checked(bad, match):
    args = dict(queries=np.ones((2, 3)), corpus=np.ones((10, 3)), k=2, block_size=4) | bad
    with pytest.raises(ValueError, match=match):
        top_k_inner_product(**args)


def test_search_widths_must_agree():
    with pytest.raises(ValueError, match="queries have width D = 4 but the corpus has D = 3"):
        top_k_inner_product(np.ones((2, 4)), np.ones((5, 3)), 1)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 25), st.integers(1, 4)), elements=st.integers(-2, 2)),
       st.integers(-3, 6), st.integers(1, 7))
def test_similar_pairs_equal_the_upper_triangle_of_the_full_matrix(x, threshold, block_size):
    pairs, scores = similar_pairs(x, float(threshold), block_size)
    full = x @ x.T
    i, j = np.nonzero(np.triu(full >= threshold, k=1))
    np.testing.assert_array_equal(pairs, np.stack([i, j], axis=1).reshape(-1, 2))
    np.testing.assert_array_equal(scores, full[i, j])


def test_similar_pairs_refuses_to_fill_memory():
    with pytest.raises(ValueError, match="more than 10 pairs score >= -1.0"):
        similar_pairs(np.ones((20, 2)), -1.0, block_size=4, max_pairs=10)


# --- faiss ----------------------------------------------------------------------------------

needs_faiss = pytest.mark.skipif(not faiss_available()[0], reason=faiss_available()[1] or "faiss present")


@needs_faiss
def test_faiss_flat_equals_exact_search():
    rng = np.random.default_rng(3)
    q, c = unit_rows(rng, 64, 32), unit_rows(rng, 2000, 32)
    scores, indices = faiss_top_k(q, c, 10, kind="flat")
    want_s, want_i = top_k_inner_product(q, c, 10, block_size=256)
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


@needs_faiss
def test_faiss_ivf_is_approximate_but_close_and_index_engines_agree():
    rng = np.random.default_rng(4)
    c = unit_rows(rng, 4000, 16)
    index = Index(c)
    q = c[:50] + 0.05 * unit_rows(rng, 50, 16)
    exact = index.search(q, 10)[1]
    flat = index.search(q, 10, engine="faiss")[1]
    np.testing.assert_array_equal(flat, exact)
    ivf = index.search(q, 10, engine="faiss-ivf", nprobe=64)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ivf, exact)])
    assert recall > 0.9  # 64 of round(4·√4000) = 102 cells visited


def test_a_faiss_engine_without_faiss_names_the_extra(monkeypatch):
    monkeypatch.setattr("minicon.retrieval.faiss_search.faiss_available",
                        lambda: (False, 'faiss is not installed; pip install "minicon[faiss]" (faiss-cpu)'))
    with pytest.raises(ImportError, match=r"minicon\[faiss\]"):
        Index(np.eye(3)).search(np.ones(3), 1, engine="faiss")


# --- union-find and groups ------------------------------------------------------------------

def components_by_search(n, pairs):
    """Reference: connected components by depth-first search over an adjacency list."""
    neighbours = {i: set() for i in range(n)}
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, groups = set(), []
    for start in range(n):
        if start in seen or not neighbours[start]:
            continue
        stack, group = [start], set()
        while stack:
            node = stack.pop()
            if node not in group:
                group.add(node)
                stack.extend(neighbours[node] - group)
        seen |= group
        groups.append(sorted(group))
    return sorted(groups, key=lambda g: (-len(g), g[0]))


@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))))
def test_union_find_groups_are_the_connected_components(graph):
    n, pairs = graph
    got = [g.tolist() for g in group_pairs(n, np.array(pairs, dtype=np.int64).reshape(-1, 2))]
    assert got == [g for g in components_by_search(n, pairs) if len(g) > 1]


def test_union_find_by_hand():
    forest = UnionFind(6)
    assert forest.union(0, 1) and forest.union(2, 3) and forest.union(1, 3)
    assert not forest.union(0, 2)  # already one set
    assert len({forest.find(i) for i in range(4)}) == 1 and forest.find(4) != forest.find(5)
    groups = group_pairs(7, np.array([[5, 6], [0, 1], [1, 2], [4, 4]]))
    assert [g.tolist() for g in groups] == [[0, 1, 2], [5, 6]]  # a self-pair makes no group


def test_group_pairs_checks_its_indices():
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        group_pairs(3, np.array([[0, 3]]))


def test_near_duplicates_finds_chains_and_checks_the_threshold():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.9, np.sqrt(1 - 0.81), 0.0])  # cos(a, b) = 0.9
    c = np.array([0.62, 0.785, 0.0])  # cos(b, c) ≈ 0.90, cos(a, c) ≈ 0.62
    far = np.array([0.0, 0.0, 1.0])
    features = np.stack([a, b, c, far])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    groups, pairs, _ = near_duplicates(features, 0.85)
    assert [g.tolist() for g in groups] == [[0, 1, 2]] and pairs.tolist() == [[0, 1], [1, 2]]
    for bad in (1.5, -1.01, float("nan"), "x"):
        with pytest.raises(ValueError, match=r"threshold must be"):
            near_duplicates(features, bad)


def test_nearest_neighbour_similarity_skips_the_row_itself_even_behind_an_exact_copy():
    features = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    np.testing.assert_allclose(nearest_neighbour_similarity(features, block_size=2), [1.0, 1.0, 0.8, 0.8])


def test_auto_threshold_separates_planted_copies_from_ordinary_neighbours():
    rng = np.random.default_rng(5)
    base = unit_rows(rng, 400, 32, np.float64)
    copies = base[:20] + 0.01 * rng.standard_normal((20, 32))
    features = np.concatenate([base, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    threshold, how = auto_threshold(features, block_size=64)
    groups = {tuple(g.tolist()) for g in near_duplicates(features, threshold)[0]}
    planted = {(i, 400 + i) for i in range(20)}
    assert planted <= groups and len(groups - planted) <= 4  # 3σ: a tail of ordinary neighbours (2 here)
    assert how.startswith(f"--auto: threshold {threshold:.4f} = 1 - exp(m - 3 s)")
    strict, _ = auto_threshold(features, block_size=64, spread=6)
    assert {tuple(g.tolist()) for g in near_duplicates(features, strict)[0]} == planted


# --- metrics --------------------------------------------------------------------------------

def test_precision_and_map_golden_values():
    retrieved = np.array([[1, 0, 1, 1], [2, 2, 2, 2], [0, 0, 0, 0]])
    query = np.array([1, 2, 1])
    assert precision_at_k(retrieved, query, 2) == pytest.approx((0.5 + 1 + 0) / 3)
    # query 0: hits at ranks 1, 3, 4 -> (1 + 2/3 + 3/4) / min(4, R=5); query 1: 1; query 2: 0
    want = ((1 + 2 / 3 + 3 / 4) / 4 + 1 + 0) / 3
    assert mean_average_precision_at_k(retrieved, query, num_relevant=5) == pytest.approx(want)
    # with R = 3 < k the denominator is R: query 0 gives (1 + 2/3 + 3/4) / 3
    assert mean_average_precision_at_k(retrieved[:1], query[:1], num_relevant=3) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_pair_detection_counts_unordered_pairs_once():
    got = pair_detection(np.array([[0, 1], [1, 0], [2, 3], [4, 5]]), np.array([[1, 0], [3, 2], [6, 7]]), n=8)
    assert (got["found"], got["correct"], got["true"]) == (3, 2, 3)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)


def average_precision_by_sorting(features, true_pairs):
    """Reference: scikit-learn's step-wise AP over every pair, from the full matrix and a Python loop."""
    n = len(features)
    full = features @ features.T
    truth = {tuple(sorted(p)) for p in true_pairs.tolist()}
    scores = [(full[i, j], (i, j) in truth) for i, j in itertools.combinations(range(n), 2)]
    ap, previous_recall = 0.0, 0.0
    for t in sorted({s for s, positive in scores if positive}, reverse=True):
        retrieved = [positive for s, positive in scores if s >= t]
        recall = sum(retrieved) / len(truth)
        ap += (recall - previous_recall) * sum(retrieved) / len(retrieved)
        previous_recall = recall
    return ap


@pytest.mark.parametrize("block_size", [3, 64])
def test_pair_average_precision_against_sorting_every_pair(block_size):
    rng = np.random.default_rng(6)
    features = rng.integers(-2, 3, (23, 3)).astype(np.float64)  # many exact ties
    true_pairs = np.array([[0, 1], [5, 2], [7, 20], [10, 11], [3, 22]])
    got = pair_average_precision(features, true_pairs, block_size)["average_precision"]
    assert got == pytest.approx(average_precision_by_sorting(features, true_pairs), abs=1e-12)


# --- the near-duplicate benchmark -----------------------------------------------------------

def pictures(n=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def test_the_benchmark_is_seeded_and_deterministic():
    images = pictures()
    a, b = near_duplicate_benchmark(images, 8, 2, seed=3), near_duplicate_benchmark(images, 8, 2, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    assert a.alterations == b.alterations
    c = near_duplicate_benchmark(images, 8, 2, seed=4)
    assert not np.array_equal(a.images, c.images)


def test_the_benchmark_ground_truth_is_right():
    images = pictures()
    bench = near_duplicate_benchmark(images, n_sources=10, copies=2, seed=0)
    assert len(bench.images) == 40 + 20 and bench.is_copy.sum() == 20 and len(bench.sources) == 10
    originals = np.nonzero(~bench.is_copy)[0]
    np.testing.assert_array_equal(bench.images[originals], images[bench.group[originals]])  # originals untouched
    assert sorted(bench.group[originals].tolist()) == list(range(40))
    copied = bench.group[bench.is_copy]
    assert sorted(set(copied.tolist())) == bench.sources.tolist() and np.bincount(copied).max() == 2
    want = {(i, j) for i in range(60) for j in range(i + 1, 60) if bench.group[i] == bench.group[j]}
    assert {tuple(p) for p in bench.pairs.tolist()} == want and len(want) == 10 * 3
    assert all(w == "" for w, c in zip(bench.alterations, bench.is_copy) if not c)
    assert all("crop" in w and "jpeg q" in w for w, c in zip(bench.alterations, bench.is_copy) if c)


def test_a_flip_only_copy_is_its_original_mirrored():
    images = pictures()
    bench = near_duplicate_benchmark(images, n_sources=20, copies=1, seed=1, alterations=("flip",))
    for row in np.nonzero(bench.is_copy)[0]:
        original = images[bench.group[row]]
        want = original[:, :, ::-1] if bench.alterations[row] == "flip" else original
        np.testing.assert_array_equal(bench.images[row], want)
    assert {"flip", ""} == set(w for w, c in zip(bench.alterations, bench.is_copy) if c)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_sources=0), "n_sources"), (dict(n_sources=41), "n_sources"), (dict(copies=0), "copies"),
    (dict(alterations=("flip", "warp")), "unknown alterations"),
])
def test_benchmark_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        near_duplicate_benchmark(pictures(), **(dict(n_sources=5) | kwargs))


def test_the_benchmark_alterations_are_listed():
    assert ALTERATIONS == ("crop", "flip", "jitter", "rotate_or_blur", "jpeg")
