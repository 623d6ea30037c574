"""Search through FAISS (the optional extra ``pip install "minicon[faiss]"``): flat or inverted-file indexes.

FAISS (Johnson, Douze, Jégou, "Billion-scale similarity search with GPUs",
IEEE Trans. Big Data 2019, arXiv:1702.08734, 2017) is the reference library
for similarity search. Two of its indexes are used here, both by inner
product, which is the cosine on the index's normalized rows:

* ``IndexFlatIP``: exhaustive, exact; the same neighbours as
  :func:`~minicon.retrieval.exact.top_k_inner_product` up to float32
  rounding (its GEMM sums in another order) and the order of exactly tied
  scores.
* ``IndexIVFFlat``: k-means splits the corpus into ``nlist`` cells (Voronoi
  cells of the centroids); a query visits only its ``nprobe`` nearest cells,
  so it is approximate, trading recall for speed on large corpora (the
  inverted file of Sivic & Zisserman 2003 and Jégou et al. 2011, as §2 of
  Johnson et al. describes it).
"""

from __future__ import annotations

import math

import numpy


def faiss_available() -> tuple:
    """``(True, "")`` when faiss imports, else ``(False, why)`` with the install hint."""
    try:
        import faiss  # noqa: F401
    except ImportError as exc:
        return False, f"faiss is not installed ({exc}); pip install \"minicon[faiss]\" (faiss-cpu)"
    return True, ""


def _faiss():
    ok, why = faiss_available()
    if not ok:
        raise ImportError(f"--engine faiss: {why}")
    import faiss

    return faiss


def default_nlist(n: int) -> int:
    """Cells of the IVF index: about 4√N (FAISS's guideline), with at least 39 training points per cell."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def faiss_top_k(queries, corpus, k: int, kind: str = "flat", nlist: int | None = None, nprobe: int = 8,
                seed: int = 0):
    """The ``k`` corpus rows of largest inner product with each query, found by FAISS.

    Parameters
    ----------
    queries : numpy.ndarray, float32, shape (M, D)
    corpus : numpy.ndarray, float32, shape (N, D)
    k : int
        ``1 <= k <= N``.
    kind : {"flat", "ivf"}
    nlist : int, optional
        IVF cells (default :func:`default_nlist`).
    nprobe : int
        IVF cells visited per query (at most nlist).
    seed : int
        Seed of the IVF's k-means.

    Returns
    -------
    scores : numpy.ndarray, float32, shape (M, k)
    indices : numpy.ndarray, int64, shape (M, k)
        For IVF, -1 where the visited cells held fewer than k rows.

    Raises
    ------
    ImportError
        Without faiss (names the extra).
    ValueError
        For an unknown ``kind``.
    """
    faiss = _faiss()
    queries = numpy.ascontiguousarray(queries, dtype=numpy.float32)
    corpus = numpy.ascontiguousarray(corpus, dtype=numpy.float32)
    d = corpus.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = nlist or default_nlist(corpus.shape[0])
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(corpus)
        index.nprobe = min(nprobe, nlist)
    else:
        raise ValueError(f"faiss_top_k: kind must be 'flat' or 'ivf', got {kind!r}")
    index.add(corpus)
    scores, indices = index.search(queries, k)
    return scores, indices.astype(numpy.int64)
