"""Near-duplicate detection: pairs above a similarity threshold, grouped by union-find.

Two rows are near-duplicates when their cosine similarity is at least the
threshold S; a group is a connected component of that relation (a chain
a–b, b–c makes one group {a, b, c} even if a and c score below S), found
with a disjoint-set forest.
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_host
from .exact import BLOCK_SIZE, similar_pairs, top_k_inner_product


class UnionFind:
    """Disjoint sets over ``0 .. n-1``: union by size, path halving.

    Each ``find`` / ``union`` costs O(α(n)) amortized, the inverse Ackermann
    function (Tarjan 1975, "Efficiency of a good but not linear set union
    algorithm", J. ACM 22(2); path halving: Tarjan & van Leeuwen 1984).

    Parameters
    ----------
    n : int
        Number of elements, ≥ 0.
    """

    def __init__(self, n: int):
        if n < 0:
            raise ValueError(f"UnionFind: n must be >= 0, got {n}")
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        """The representative of ``x``'s set."""
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving: point at the grandparent
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        """Merge the sets of ``a`` and ``b``; False when they were already one."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return False
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a  # the smaller tree goes under the larger: depth stays O(log n)
        self.size[a] += self.size[b]
        return True


def group_pairs(n: int, pairs) -> list:
    """Connected components of the graph on ``n`` rows with edges ``pairs``, singletons left out.

    Parameters
    ----------
    n : int
    pairs : array of int, shape (P, 2)
        Edges ``(i, j)``, indices in ``[0, n)``.

    Returns
    -------
    list of numpy.ndarray (int64)
        Each group's rows in increasing order; groups of at least two rows,
        largest first, ties by smallest row.

    Raises
    ------
    ValueError
        For pairs not of shape (P, 2) or with an index outside ``[0, n)``.
    """
    pairs = numpy.asarray(pairs, dtype=numpy.int64)
    if pairs.size == 0:
        return []
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"group_pairs: pairs must have shape (P, 2), got {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= n:
        raise ValueError(f"group_pairs: pair indices must lie in [0, {n}), got [{pairs.min()}, {pairs.max()}]")
    forest = UnionFind(n)
    for a, b in pairs.tolist():
        forest.union(a, b)
    members = numpy.unique(pairs)
    roots = numpy.array([forest.find(int(x)) for x in members])
    order = numpy.argsort(roots, kind="stable")  # members stay increasing inside each root's run
    roots, members = roots[order], members[order]
    groups = numpy.split(members, numpy.nonzero(numpy.diff(roots))[0] + 1)
    return sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), int(g[0])))  # a self-pair is no group


def nearest_neighbour_similarity(features, block_size: int = BLOCK_SIZE):
    """For each row, its highest cosine with any *other* row (blocked exact search with k = 2).

    Parameters
    ----------
    features : xp.ndarray, float, shape (N, D), N ≥ 2

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    xp = array_module(features)
    scores, indices = top_k_inner_product(features, features, 2, block_size)
    own = indices[:, 0] == xp.arange(features.shape[0])  # an exact copy with a lower row can come first
    return to_host(xp.where(own, scores[:, 1], scores[:, 0]))


# robust standard deviations below the median log distance: the textbook 3σ outlier rule. Chosen on the
# near-duplicate benchmark with seed 1 (F1 0.28 against 0.02 for 6σ; benchmarks/RESULTS.md), reported on seed 0
AUTO_SPREAD = 3.0


def auto_threshold(features, block_size: int = BLOCK_SIZE, spread: float = AUTO_SPREAD) -> tuple:
    r"""A threshold read from the index itself: near-duplicates as outliers of nearest-neighbour distance.

    For every row, the cosine distance to its nearest other row,
    :math:`d_i = 1 - s_i`, is computed exactly. Most rows' nearest neighbour
    is merely similar; a near-duplicate's is far closer than usual. On a log
    scale the distances are roughly symmetric and their lower tail is
    unbounded (cosines crowd just below 1, especially for ReLU features),
    so the threshold is the robust outlier bound

    .. math:: \ell_i = \log d_i, \qquad
              S = 1 - \exp\!\big(\operatorname{median}(\ell) - z \cdot 1.4826\,
              \operatorname{median}|\ell - \operatorname{median}(\ell)|\big),

    z = 3 robust standard deviations below the median (1.4826·MAD estimates
    σ for a normal distribution; Rousseeuw & Croux 1993, "Alternatives to
    the median absolute deviation", JASA 88). It needs no labels; it
    assumes near-duplicates are a minority (well under half the rows).
    Larger z trades recall for precision.

    Parameters
    ----------
    features : xp.ndarray, float, shape (N, D), L2-normalized, N ≥ 2
    spread : float
        z, in robust standard deviations.

    Returns
    -------
    threshold : float
        In [-1, 1].
    how : str
        One sentence with the numbers, for the user.
    """
    s = nearest_neighbour_similarity(features, block_size).astype(numpy.float64)
    log_d = numpy.log(numpy.clip(1.0 - s, 1e-12, None))  # an exact copy has d = 0
    median = float(numpy.median(log_d))
    sigma = 1.4826 * float(numpy.median(numpy.abs(log_d - median)))
    threshold = float(numpy.clip(1.0 - numpy.exp(median - spread * sigma), -1.0, 1.0))
    how = (f"--auto: threshold {threshold:.4f} = 1 - exp(m - {spread:g} s), m = {median:.3f} the median "
           f"and s = {sigma:.3f} the robust std (1.4826 MAD) of log(1 - cosine) to each of the {len(s)} rows' "
           f"nearest neighbour (median nearest cosine {1 - numpy.exp(median):.4f})")
    return threshold, how


def near_duplicates(features, threshold: float, block_size: int = BLOCK_SIZE, max_pairs: int = 5_000_000):
    """Groups of rows whose cosine similarity is at least ``threshold``, with the pairs behind them.

    Pairs come from :func:`~minicon.retrieval.exact.similar_pairs` (blocked,
    each pair once, memory bounded), groups from :func:`group_pairs`
    (union-find).

    Parameters
    ----------
    features : xp.ndarray, float, shape (N, D)
        L2-normalized rows.
    threshold : float
        In [-1, 1].

    Returns
    -------
    groups : list of numpy.ndarray
        As :func:`group_pairs`.
    pairs : numpy.ndarray, int64, shape (P, 2)
    scores : numpy.ndarray, shape (P,)

    Raises
    ------
    ValueError
        For a threshold outside [-1, 1] (or not a number), or more than
        ``max_pairs`` pairs above it.
    """
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"near_duplicates: threshold must be a number in [-1, 1], got {threshold!r}") from None
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"near_duplicates: threshold must be in [-1, 1] (a cosine similarity), got {threshold}")
    pairs, scores = similar_pairs(features, threshold, block_size, max_pairs)
    return group_pairs(features.shape[0], pairs), pairs, scores
