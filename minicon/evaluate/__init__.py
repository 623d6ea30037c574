"""Evaluating frozen representations: the kNN monitor and collapse diagnostics.

Everything here reads embeddings (NumPy/CuPy arrays or Tensors) without
gradients and returns Python floats.
"""

from .diagnostics import (
    alignment,
    effective_rank,
    embedding_std,
    positive_negative_similarity,
    uniformity,
)
from .knn import knn_accuracy

__all__ = [
    "knn_accuracy", "alignment", "uniformity", "effective_rank", "embedding_std",
    "positive_negative_similarity",
]
