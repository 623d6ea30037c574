"""L2 normalization (a ``Function``) and cosine similarity, zero-safe.

Every loss here compares directions, not lengths, so each one starts by
putting its embeddings on the unit sphere. The array helpers
:func:`l2_normalize` / :func:`l2_normalize_backward` are what the fused
losses call inside their own forward and backward; :class:`Normalize` wraps
the same pair as an op of its own.
"""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import array_module, broadcast_shapes
from ..ops import sum as _sum

EPS = 1e-12  # as torch.nn.functional.normalize: a vector shorter than this is divided by EPS


def l2_normalize(x, axis: int = -1, eps: float = EPS):
    """``(y, n)`` with ``y = x / n`` and ``n = max(‖x‖, eps)`` along ``axis`` (arrays).

    ``‖x‖`` is computed as ``s · ‖x / s‖`` with ``s = max|x|``, so squaring
    neither overflows (float32 ``x²`` is inf beyond 1.8e19) nor underflows
    to 0 for tiny vectors. ``n`` keeps ``axis`` as a length-1 axis.
    """
    xp = array_module(x)
    scale = xp.abs(x).max(axis=axis, keepdims=True)
    scale = xp.where(scale > 0, scale, 1)  # an all-zero vector: its norm is 0 either way
    scaled = x / scale
    norm = xp.sqrt((scaled * scaled).sum(axis=axis, keepdims=True)) * scale
    n = xp.maximum(norm, eps)
    return x / n, n


def l2_normalize_backward(g, y, n, axis: int = -1, eps: float = EPS):
    """Vector–Jacobian product of :func:`l2_normalize`: ``(g - y (y·g)) / n`` (arrays).

    The projection term is dropped where the norm was clamped to ``eps``
    (there ``y = x / eps`` is linear in x). See :class:`Normalize`.
    """
    xp = array_module(g, y, n)
    radial = (y * g).sum(axis=axis, keepdims=True)
    radial = xp.where(n > eps, radial, 0)
    return (g - y * radial) / n


class Normalize(Function):
    """``y = x / max(‖x‖, ε)`` along ``axis``: unit vectors, and 0 for a zero vector.

    Gradient. Where ‖x‖ > ε, y = x/‖x‖ and ∂‖x‖/∂x_j = x_j/‖x‖ = y_j, so
    ∂y_i/∂x_j = δ_ij/‖x‖ - x_i y_j/‖x‖² = (δ_ij - y_i y_j)/‖x‖; the
    vector–Jacobian product is ``grad_x = (g - y (y·g)) / ‖x‖``: the upstream
    gradient with its radial part removed (scaling x does not move y), divided
    by the length. Where ‖x‖ ≤ ε, y = x/ε and ``grad_x = g / ε``. Both are
    finite, so an all-zero vector gives y = 0 and a finite gradient, never NaN.

    Shapes: x any; y the same. Saves: y (for the projection) and the clamped
    norm n (one per vector along ``axis``; n > ε tells which branch applied).

    Raises
    ------
    ValueError
        If ``eps`` is not > 0.

    References
    ----------
    The map PyTorch's ``torch.nn.functional.normalize`` computes (same ε rule).
    """

    @staticmethod
    def forward(ctx, x, *, axis=-1, eps=EPS):
        if not eps > 0:
            raise ValueError(f"normalize: eps must be > 0, got {eps!r}")
        y, n = l2_normalize(x, axis, eps)
        ctx.save_for_backward(y, n)
        ctx.axis, ctx.eps = axis, eps
        return y

    @staticmethod
    def backward(ctx, g):
        y, n = ctx.saved
        return l2_normalize_backward(g, y, n, ctx.axis, ctx.eps)


def normalize(x, axis: int = -1, eps: float = EPS) -> Tensor:
    """Scale each vector along ``axis`` to unit L2 length; zero vectors stay 0.

    Parameters
    ----------
    x : Tensor, shape (..., D, ...)
        Floating embeddings; ``axis`` indexes the vector dimension D.
    axis : int
        The axis holding each vector (default: the last).
    eps : float
        Vectors shorter than ``eps`` are divided by ``eps`` instead of their
        length, so 0 maps to 0 (default 1e-12, as PyTorch).

    Returns
    -------
    Tensor, same shape and dtype as ``x``

    Raises
    ------
    ValueError
        If ``eps`` is not > 0.

    See :class:`Normalize` for the gradient.
    """
    return Normalize.apply(x, axis=axis, eps=eps)


def cosine_similarity(a, b, axis: int = -1, eps: float = EPS) -> Tensor:
    """``cos(a, b) = Σ_axis â · b̂`` with â, b̂ from :func:`normalize`; 0 if either is 0.

    Composed of :class:`Normalize`, a product and a sum, so its gradient is
    the chain rule through them: ∂cos/∂a = (b̂ - cos · â) / max(‖a‖, ε),
    likewise for b; finite (and 0 in the radial direction) for zero vectors.

    Parameters
    ----------
    a, b : Tensor
        Shapes that broadcast, e.g. (N, D) and (N, D) or (N, D) and (D,).
    axis : int
        The vector axis (default: the last).
    eps : float
        See :func:`normalize`.

    Returns
    -------
    Tensor
        The broadcast shape with ``axis`` removed, e.g. (N,); values in [-1, 1].

    Raises
    ------
    ValueError
        If the shapes do not broadcast (names both) or ``eps`` is not > 0.
    """
    broadcast_shapes("cosine_similarity", a.shape, b.shape)
    return _sum(normalize(a, axis, eps) * normalize(b, axis, eps), axis=axis)
