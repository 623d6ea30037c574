"""Scores of a ranking: precision@k, mAP@k, and precision–recall of detected pairs.

All functions take host or device arrays and return Python floats (or host
arrays); they do no search themselves.
"""

from __future__ import annotations

import numpy

from ..backend import to_host


def _relevance(retrieved_labels, query_labels, op: str):
    """(M, k) 0/1 relevance of each retrieved item: its label equals its query's."""
    retrieved = to_host(retrieved_labels)
    query = to_host(query_labels)
    if retrieved.ndim != 2 or query.shape != (retrieved.shape[0],):
        raise ValueError(f"{op}: retrieved_labels must be (M, k) and query_labels (M,), got "
                         f"{retrieved.shape} and {query.shape}")
    return retrieved == query[:, None]


def _relevance_at_k(retrieved_labels, query_labels, k, op: str):
    """The relevance matrix of :func:`_relevance` and k (default K), checked to lie in [1, K]."""
    rel = _relevance(retrieved_labels, query_labels, op)
    k = rel.shape[1] if k is None else k
    if not 1 <= k <= rel.shape[1]:
        raise ValueError(f"{op}: k must be in [1, {rel.shape[1]}], got {k}")
    return rel, k


def precision_at_k(retrieved_labels, query_labels, k: int | None = None) -> float:
    r"""Mean over queries of the share of the first ``k`` results that are relevant.

    .. math:: \mathrm{P@}k = \frac1M \sum_{m=1}^{M} \frac1k \sum_{i=1}^{k} \mathrm{rel}_m(i)

    where :math:`\mathrm{rel}_m(i) = 1` when result i of query m has the
    query's label (Manning, Raghavan, Schütze, *Introduction to Information
    Retrieval*, 2008, §8.4).

    Parameters
    ----------
    retrieved_labels : array, shape (M, K)
        Labels of each query's results, best first.
    query_labels : array, shape (M,)
    k : int, optional
        Default K; at most K.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        For shapes that do not match or ``k`` outside [1, K].
    """
    rel, k = _relevance_at_k(retrieved_labels, query_labels, k, "precision_at_k")
    return float(rel[:, :k].mean()) if rel.shape[0] else 0.0


def mean_average_precision_at_k(retrieved_labels, query_labels, num_relevant, k: int | None = None) -> float:
    r"""mAP@k: the mean over queries of average precision truncated at rank k.

    .. math:: \mathrm{AP@}k = \frac{1}{\min(k, R)} \sum_{i=1}^{k} \mathrm{P@}i \cdot \mathrm{rel}(i),
              \qquad \mathrm{mAP@}k = \frac1M \sum_m \mathrm{AP@}k_m

    with :math:`R` the number of relevant items in the corpus for that query
    (average precision: Manning, Raghavan, Schütze 2008, §8.4; the
    denominator :math:`\min(k, R)` is that of the truncated form ``apk`` in
    Hamner's ``ml_metrics``, so a perfect top k scores 1). Hashing papers
    often divide by the number of relevant items *retrieved* instead; that
    version is never smaller.

    Parameters
    ----------
    retrieved_labels : array, shape (M, K)
        Labels of each query's results, best first.
    query_labels : array, shape (M,)
    num_relevant : array of int, shape (M,), or int
        R for each query: how many corpus items share its label.
    k : int, optional
        Default K; at most K.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        For shapes that do not match or ``k`` outside [1, K].
    """
    rel, k = _relevance_at_k(retrieved_labels, query_labels, k, "mean_average_precision_at_k")
    if rel.shape[0] == 0:
        return 0.0
    rel = rel[:, :k].astype(numpy.float64)
    precision = numpy.cumsum(rel, axis=1) / numpy.arange(1, k + 1)
    r = numpy.broadcast_to(numpy.asarray(to_host(num_relevant)), (rel.shape[0],))
    denominator = numpy.maximum(numpy.minimum(k, r), 1)  # a query with no relevant item scores 0
    return float(((precision * rel).sum(axis=1) / denominator).mean())


def pair_key(pairs, n: int):
    """Each unordered pair ``(i, j)`` as one int64 ``min·n + max`` (for set operations on pairs)."""
    pairs = numpy.asarray(pairs, dtype=numpy.int64).reshape(-1, 2)
    return numpy.minimum(pairs[:, 0], pairs[:, 1]) * n + numpy.maximum(pairs[:, 0], pairs[:, 1])


def pair_detection(predicted_pairs, true_pairs, n: int) -> dict:
    """Precision, recall and F1 of a set of detected pairs against the true ones.

    Pairs are unordered; repeats count once. Precision = |found ∩ true| /
    |found| (1.0 when nothing is found), recall = |found ∩ true| / |true|,
    F1 their harmonic mean (0 when both are 0).

    Parameters
    ----------
    predicted_pairs, true_pairs : array of int, shape (P, 2)
        Row pairs, indices in ``[0, n)``.
    n : int
        Number of rows.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1", "found", "true", "correct"}``.
    """
    found = numpy.unique(pair_key(predicted_pairs, n))
    true = numpy.unique(pair_key(true_pairs, n))
    correct = int(numpy.isin(found, true).sum())
    precision = correct / len(found) if len(found) else 1.0
    recall = correct / len(true) if len(true) else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "found": int(len(found)),
            "true": int(len(true)), "correct": correct}


def average_precision_from_counts(positive_scores, count_at_least, curve: bool = False):
    r"""Area under the precision–recall curve of a ranking of all pairs, by its step-wise sum.

    .. math:: \mathrm{AP} = \sum_{t} \big(R(t) - R(t^{+})\big)\, P(t)

    over the distinct scores :math:`t` of the positive pairs, highest first,
    where :math:`P(t)` and :math:`R(t)` are precision and recall of "every
    pair scoring at least t" (the definition of scikit-learn's
    ``average_precision_score``; Manning et al. 2008, §8.4). Pairs tied at a
    threshold enter together, so ties are never broken in anyone's favour.

    Parameters
    ----------
    positive_scores : array, shape (T,)
        Score of every true pair.
    count_at_least : callable
        ``count_at_least(thresholds)`` → for each threshold (a sorted,
        increasing float64 array) the number of *all* pairs, positive or
        not, scoring at least it.

    curve : bool
        Also return the curve.

    Returns
    -------
    float in [0, 1]
        The average precision; with ``curve``, ``(ap, thresholds, precision,
        recall)``, the last three numpy arrays from the highest threshold down.
    """
    scores = numpy.sort(numpy.asarray(positive_scores, dtype=numpy.float64))[::-1]
    if scores.size == 0:
        return (0.0, numpy.zeros(0), numpy.zeros(0), numpy.zeros(0)) if curve else 0.0
    thresholds = numpy.unique(scores)  # increasing
    retrieved = numpy.asarray(count_at_least(thresholds), dtype=numpy.float64)
    # positives at least t: from the sorted positive scores themselves
    positives = scores.size - numpy.searchsorted(numpy.sort(scores), thresholds, side="left")
    precision = positives / numpy.maximum(retrieved, 1)
    recall = positives / scores.size
    # walk thresholds from high to low: recall grows by the positives each one adds
    recall, precision = recall[::-1], precision[::-1]
    gained = numpy.diff(numpy.concatenate([[0.0], recall]))
    ap = float((gained * precision).sum())
    return (ap, thresholds[::-1], precision, recall) if curve else ap
