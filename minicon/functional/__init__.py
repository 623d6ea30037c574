"""Neural-network ops on NCHW batches, each a ``Function`` with a hand-derived backward.

Imported as ``import minicon.functional as F``; names and signatures follow
``torch.nn.functional``. Public layout NCHW, default dtype float32 (float64
for gradient checks). Spatial ops work internally on channels-last memory and
return NCHW views of it (see :mod:`minicon.functional.im2col`), so chains of
conv, batch norm, ReLU and pooling pass channels-last arrays along without
transposing copies.
"""

from __future__ import annotations

from ..ops import relu, reshape
from .conv import conv2d
from .linear import dropout, linear
from .normalization import batch_norm
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d


def flatten(x, start_dim=1, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one, as ``torch.flatten`` (default: all but N).

    Parameters
    ----------
    x : Tensor
    start_dim, end_dim : int
        First and last axis merged (negative counts from the end).

    Returns
    -------
    Tensor
        ``x.reshape(shape[:start] + (-1,) + shape[end + 1:])``; a copy when
        x's memory is not in that order (e.g. channels-last), else a view.

    Raises
    ------
    ValueError
        If an axis is out of range or start_dim comes after end_dim.
    """
    ndim = x.ndim
    if not (-ndim <= start_dim < ndim and -ndim <= end_dim < ndim):
        raise ValueError(
            f"flatten: start_dim {start_dim} / end_dim {end_dim} out of range for shape {x.shape}"
        )
    start, end = start_dim % ndim, end_dim % ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    size = 1
    for n in x.shape[start : end + 1]:
        size *= n
    return reshape(x, x.shape[:start] + (size,) + x.shape[end + 1 :])


__all__ = [
    "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "linear",
    "relu", "flatten", "dropout",
]
