"""Turning embeddings (Tensors or arrays) into checked, L2-normalized ``xp`` arrays."""

from __future__ import annotations

import operator

from ..autograd import Tensor
from ..backend import array_module


def as_embeddings(z, name: str, op: str):
    """The array of ``z`` (a Tensor's data, detached), checked to be 2-D ``(N, D)``.

    Raises
    ------
    ValueError
        If ``z`` is not 2-D; the message names ``op`` and ``name``.
    """
    z = z.data if isinstance(z, Tensor) else z
    if getattr(z, "ndim", None) != 2:
        raise ValueError(
            f"{op}: {name} must be a 2-D (N, D) array, got shape {getattr(z, 'shape', None)}"
        )
    return z


def l2_normalize(z, eps: float = 1e-12):
    """Rows of ``z`` (N, D) divided by their L2 norm (at least ``eps``, as F.normalize).

    Integer input becomes float64 (float32 and float64 keep their dtype).
    """
    xp = array_module(z)
    if z.dtype.kind != "f":
        z = z.astype(xp.float64)
    norm = xp.linalg.norm(z, axis=1, keepdims=True)
    return z / xp.maximum(norm, eps)


def positive_int(value, name: str, op: str) -> int:
    """``value`` as an int ≥ 1, or a ValueError naming ``op`` and ``name``."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{op}: {name} must be an integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value}")
    return value
