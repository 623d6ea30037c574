"""Exact nearest-neighbour search by blocked GEMMs: memory bounded, ties broken by row index.

Both functions here compute inner products ``queries @ corpus.T`` one
``(block_size, block_size)`` tile at a time on ``xp`` (NumPy or CuPy), so
the memory they need is set by ``block_size``, not by the corpus: searching
10,000 queries in 60,000 rows never holds a 10,000 × 60,000 (let alone a
60,000 × 60,000) matrix. With L2-normalized rows the inner product is the
cosine similarity.
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_host
from ..evaluate.features import positive_int

BLOCK_SIZE = 2048  # rows per tile: a float32 tile is 16 MiB, and a GEMM this size runs near the BLAS peak


def _check_pair(queries, corpus, op: str):
    xp = array_module(queries, corpus, op=op)
    for name, a in (("queries", queries), ("corpus", corpus)):
        if getattr(a, "ndim", None) != 2 or a.dtype.kind != "f":
            raise ValueError(f"{op}: {name} must be a floating 2-D (rows, D) array, got shape "
                             f"{getattr(a, 'shape', None)} and dtype {getattr(a, 'dtype', None)}")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"{op}: queries have width D = {queries.shape[1]} but the corpus has "
                         f"D = {corpus.shape[1]}")
    return xp


def _top_k_tile(sim, k: int, offset: int):
    """The ``k`` best columns of each row of ``sim`` (B, n), ordered by (score desc, column asc).

    Returns ``(scores (B, k), indices (B, k))`` with ``offset`` added to the
    column indices. ``argpartition`` alone may keep any of several columns
    tied with the k-th score; the rows where that choice matters are redone
    with a stable sort, so the result is the same as one stable sort of the
    whole row.
    """
    xp = array_module(sim)
    n = sim.shape[1]
    if k < n:
        part = xp.argpartition(sim, n - k, axis=1)[:, n - k:]  # the k largest sit at the end
        part.sort(axis=1)  # column order, so the stable sort below breaks ties by column
    else:
        part = xp.broadcast_to(xp.arange(n), sim.shape).copy()
    scores = xp.take_along_axis(sim, part, axis=1)
    if k < n:
        kth = scores.min(axis=1, keepdims=True)
        slots = k - (sim > kth).sum(axis=1)           # places left for the columns tied with the k-th
        ambiguous = (sim == kth).sum(axis=1) > slots  # more tied columns than places: which ones matters
        for row in to_host(xp.nonzero(ambiguous)[0]).tolist():
            best = xp.argsort(-sim[row], kind="stable")[:k]
            part[row] = xp.sort(best)
            scores[row] = sim[row, part[row]]
    order = xp.argsort(-scores, axis=1, kind="stable")
    return xp.take_along_axis(scores, order, axis=1), xp.take_along_axis(part, order, axis=1) + offset


def top_k_inner_product(queries, corpus, k: int, block_size: int = BLOCK_SIZE):
    r"""The ``k`` corpus rows of largest inner product with each query, exactly, tile by tile.

    For query :math:`q` the score of corpus row :math:`c_j` is :math:`q^\top c_j`
    (the cosine when both are L2-normalized). Rows come best first; equal
    scores are ordered by row index, lowest first, so the result equals
    ``argsort(-(Q @ C.T), kind="stable")[:, :k]`` of the whole matrix
    (:func:`brute_force_top_k`) whatever ``block_size`` is, up to the
    rounding of the GEMM (exactly, for inputs whose products and sums are
    exact in the dtype).

    Parameters
    ----------
    queries : xp.ndarray, float, shape (M, D)
    corpus : xp.ndarray, float, shape (N, D)
        Same backend and width as ``queries``.
    k : int
        Neighbours per query, ``1 <= k <= N``.
    block_size : int
        Query rows and corpus rows per tile. Working memory is about
        ``block_size²`` scores plus ``(block_size, 2k)`` running candidates:
        ``4·block_size²`` bytes for float32 (16 MiB at 2048), whatever M and N.

    Returns
    -------
    scores : xp.ndarray, shape (M, k), the dtype of the inputs
        Inner products, each row non-increasing.
    indices : xp.ndarray, int64, shape (M, k)
        Corpus rows.

    Raises
    ------
    ValueError
        For arrays that are not floating 2-D, widths that differ, ``k``
        outside ``[1, N]`` or ``block_size`` < 1 (the message names it).
    TypeError
        If NumPy and CuPy arrays are mixed.
    """
    op = "top_k_inner_product"
    xp = _check_pair(queries, corpus, op)
    k = positive_int(k, "k", op)
    block_size = positive_int(block_size, "block_size", op)
    n = corpus.shape[0]
    if k > n:
        raise ValueError(f"{op}: k = {k} is more than the {n} rows of the corpus")
    all_scores, all_indices = [], []
    for q0 in range(0, queries.shape[0], block_size):
        q = queries[q0:q0 + block_size]
        best_s = best_i = None
        for c0 in range(0, n, block_size):
            s, i = _top_k_tile(q @ corpus[c0:c0 + block_size].T, min(k, n - c0, block_size), c0)
            if best_s is not None:
                # earlier tiles hold lower rows, so a stable sort of [best | new] keeps ties by row
                s, i = xp.concatenate([best_s, s], axis=1), xp.concatenate([best_i, i], axis=1)
                order = xp.argsort(-s, axis=1, kind="stable")[:, :k]
                s, i = xp.take_along_axis(s, order, axis=1), xp.take_along_axis(i, order, axis=1)
            best_s, best_i = s, i
        all_scores.append(best_s)
        all_indices.append(best_i)
    if not all_scores:
        return xp.zeros((0, k), corpus.dtype), xp.zeros((0, k), xp.int64)
    return xp.concatenate(all_scores), xp.concatenate(all_indices).astype(xp.int64)


def brute_force_top_k(queries, corpus, k: int):
    """The reference for :func:`top_k_inner_product`: one full ``(M, N)`` matrix and a stable sort.

    Memory ``M·N`` scores and ``M·N`` int64 indices: for small inputs and tests only.
    """
    xp = _check_pair(queries, corpus, "brute_force_top_k")
    sim = queries @ corpus.T
    order = xp.argsort(-sim, axis=1, kind="stable")[:, :k]
    return xp.take_along_axis(sim, order, axis=1), order.astype(xp.int64)


def similar_pairs(features, threshold: float, block_size: int = BLOCK_SIZE, max_pairs: int = 5_000_000):
    """Every pair of rows ``i < j`` whose inner product is at least ``threshold``, tile by tile.

    Only tiles on or above the block diagonal are computed (each pair once),
    so working memory is ``block_size²`` scores plus the pairs found.

    Parameters
    ----------
    features : xp.ndarray, float, shape (N, D)
        Usually L2-normalized (then scores are cosines in [-1, 1]).
    threshold : float
        Smallest score kept.
    block_size : int
        Rows per tile side.
    max_pairs : int
        Refuse to collect more pairs than this (a threshold too low for the
        data would otherwise fill memory with N²/2 pairs).

    Returns
    -------
    pairs : numpy.ndarray, int64, shape (P, 2)
        ``(i, j)`` with ``i < j``, sorted by i then j, on the host.
    scores : numpy.ndarray, shape (P,)
        Their inner products, the dtype of ``features``.

    Raises
    ------
    ValueError
        For features that are not floating 2-D, a bad ``block_size``, or more
        than ``max_pairs`` pairs (the message says how many were found so far).
    """
    op = "similar_pairs"
    xp = _check_pair(features, features, op)
    block_size = positive_int(block_size, "block_size", op)
    n = features.shape[0]
    found_pairs, found_scores, count = [], [], 0
    for r0 in range(0, n, block_size):
        rows = features[r0:r0 + block_size]
        for c0 in range(r0, n, block_size):
            sim = rows @ features[c0:c0 + block_size].T
            keep = sim >= threshold
            if c0 == r0:  # the diagonal tile: only j > i
                keep &= xp.triu(xp.ones(keep.shape, dtype=bool), k=1)
            i, j = xp.nonzero(keep)
            count += int(i.shape[0])
            if count > max_pairs:
                raise ValueError(f"{op}: more than {max_pairs} pairs score >= {threshold} (found {count} in the "
                                 f"first {min(r0 + block_size, n)} rows); raise the threshold (or max_pairs, "
                                 "--max-pairs on the command line)")
            if i.shape[0]:
                found_scores.append(to_host(sim[i, j]))
                found_pairs.append(to_host(xp.stack([i + r0, j + c0], axis=1)))
    if not found_pairs:
        return numpy.zeros((0, 2), numpy.int64), numpy.zeros(0, features.dtype)
    pairs = numpy.concatenate(found_pairs).astype(numpy.int64)
    scores = numpy.concatenate(found_scores)
    order = numpy.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], scores[order]
