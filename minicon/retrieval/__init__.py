"""Putting embeddings to work: semantic image search, text-to-image retrieval, near-duplicate detection.

* :class:`Index`: L2-normalized features of a set of images from a trained
  run, with the source of every row; ``Index.build``, ``save`` / ``load``
  (atomic ``.npz``, no pickle), ``search`` (cosine, exact by default) and
  ``search_text`` (CLIP runs).
* :func:`top_k_inner_product`: exact search by blocked GEMMs on ``xp``,
  memory bounded by the block size, ties broken by row.
* :func:`near_duplicates`: pairs above a cosine threshold, grouped by
  union-find (:class:`UnionFind`, :func:`group_pairs`); :func:`auto_threshold`
  reads a threshold from the index itself.
* :func:`near_duplicate_benchmark`: the seeded benchmark of altered copies,
  and :func:`pair_average_precision` to score a detector on it.
* ``engine="faiss"`` / ``"faiss-ivf"`` (the optional extra ``.[faiss]``):
  :mod:`minicon.retrieval.faiss_search`.
"""

from ..train.evaluation import load_run
from .benchmark import ALTERATIONS, NearDuplicateBenchmark, near_duplicate_benchmark, pair_average_precision
from .dedup import UnionFind, auto_threshold, group_pairs, near_duplicates, nearest_neighbour_similarity
from .exact import brute_force_top_k, similar_pairs, top_k_inner_product
from .index import ENGINES, Index
from .metrics import mean_average_precision_at_k, pair_detection, precision_at_k
from .sources import CIFAR_SOURCES, load_source, read_image

__all__ = [
    "Index", "ENGINES", "load_run", "top_k_inner_product", "brute_force_top_k", "similar_pairs",
    "near_duplicates", "auto_threshold", "nearest_neighbour_similarity", "UnionFind", "group_pairs",
    "near_duplicate_benchmark", "NearDuplicateBenchmark", "ALTERATIONS", "pair_average_precision",
    "precision_at_k", "mean_average_precision_at_k", "pair_detection", "load_source", "read_image",
    "CIFAR_SOURCES",
]
