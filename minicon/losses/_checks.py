"""Argument checks shared by the losses: every bad argument gets a ValueError
that names the loss, the argument and what was given."""

from __future__ import annotations

import math


def check_temperature(op: str, temperature) -> None:
    """Raise unless ``temperature`` is a finite number > 0 (logits are divided by it)."""
    if not (isinstance(temperature, (int, float)) or getattr(temperature, "shape", None) == ()):
        raise ValueError(f"{op}: temperature must be a number > 0, got {temperature!r}")
    if not (math.isfinite(float(temperature)) and float(temperature) > 0):
        raise ValueError(f"{op}: temperature must be a finite number > 0, got {temperature!r}")


def check_embeddings(
    op: str, name: str, x, min_rows: int = 1, why: str = "", letters: str = "(N, D)"
) -> None:
    """Raise unless ``x`` is a floating 2-D matrix with at least ``min_rows`` rows.

    ``why`` completes the message for ``min_rows``; ``letters`` names the
    expected shape in field letters.
    """
    if x.ndim != 2:
        raise ValueError(f"{op}: {name} must be a 2-D {letters} matrix, got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise ValueError(f"{op}: {name} must be floating point, got dtype {x.dtype}")
    if x.shape[0] < min_rows:
        raise ValueError(
            f"{op}: {name} needs at least {min_rows} rows{why}, got shape {tuple(x.shape)}"
        )


def check_same_shape(op: str, name_a: str, a, name_b: str, b) -> None:
    """Raise unless ``a`` and ``b`` have one shape; names both arguments and shapes."""
    if a.shape != b.shape:
        raise ValueError(
            f"{op}: {name_a} and {name_b} must have the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
