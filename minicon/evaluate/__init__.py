"""Evaluating frozen representations: kNN monitor, linear probe, zero-shot, collapse diagnostics.

Everything here reads embeddings (NumPy/CuPy arrays or Tensors) without
gradients and returns Python floats; :func:`extract_features` makes them from
a frozen model without touching its parameters, buffers or modes.
"""

from .diagnostics import (
    alignment,
    effective_rank,
    embedding_std,
    positive_negative_similarity,
    uniformity,
)
from .knn import knn_accuracy
from .probe import extract_features, linear_probe, raw_pixels
from .zero_shot import zero_shot_accuracy

__all__ = [
    "knn_accuracy", "alignment", "uniformity", "effective_rank", "embedding_std",
    "positive_negative_similarity", "extract_features", "linear_probe", "raw_pixels",
    "zero_shot_accuracy",
]
