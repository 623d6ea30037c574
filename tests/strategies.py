"""Hypothesis strategies shared by the tests: shapes, broadcastable pairs, values.

Values are drawn as float64 NumPy arrays on the host; tests move them to the
backend under test with ``xp.asarray``.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
shapes_with_scalar = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def floats(low=-3.0, high=3.0):
    """Bounded finite float64s."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)


def arrays(shape, low=-3.0, high=3.0):
    """Float64 arrays of ``shape`` (a shape or a strategy of shapes) in [low, high]."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high))


def away_from(values, points, margin):
    """``values`` nudged so no entry lies within ``margin`` of any of ``points`` (kinks)."""
    out = values.copy()
    for p in points:
        near = np.abs(out - p) < margin
        out[near] = p + np.where(out[near] >= p, margin, -margin)
    return out


def distinct(values, gap=1e-3):
    """``values`` made pairwise distinct by at least ``gap`` (no max ties), order kept.

    Adds a rank-based staircase, so ties and near-ties become separated.
    """
    flat = values.ravel()
    ranks = np.argsort(np.argsort(flat, kind="stable"), kind="stable")
    return (flat + gap * ranks).reshape(values.shape)


@st.composite
def broadcastable_pair(draw, max_dims=3):
    """Two shapes that broadcast together, NumPy's rules (including rank differences)."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims, max_side=4))
    return shapes.input_shapes


@st.composite
def non_contiguous(draw, shape_strategy=small_shapes, low=-3.0, high=3.0):
    """A float64 array that is a non-contiguous view (every other column of a wider array)."""
    shape = draw(shape_strategy)
    wide = draw(arrays(shape[:-1] + (shape[-1] * 2,), low, high))
    return wide[..., ::2]
