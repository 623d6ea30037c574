"""Fully connected layer and dropout."""

from __future__ import annotations

from .. import backend
from ..autograd import Function


class Linear(Function):
    """``y = x Wᵀ + b`` over the last axis of x (PyTorch's weight layout: out × in).

    Gradients, with x and g flattened to (M, in) and (M, out) matrices
    (y is linear in each input): ``grad_x = g W``, ``grad_W = gᵀ x``,
    ``grad_b = Σ_rows g``. Shapes: x (..., in); weight (out, in); bias (out,)
    or None; y (..., out). Saves: x and W.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                "(expected x (..., in) and weight (out, in))"
            )
        if bias is not None and bias.shape != weight.shape[:1]:
            raise ValueError(
                f"linear: bias must have shape ({weight.shape[0]},) for weight shape "
                f"{weight.shape}, got {bias.shape}"
            )
        ctx.save_for_backward(x, weight)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        g2 = g.reshape(-1, weight.shape[0])
        grad_x = (g2 @ weight).reshape(x.shape) if needs[0] else None
        grad_w = g2.T @ x.reshape(-1, weight.shape[1]) if needs[1] else None
        grad_b = g2.sum(axis=0) if needs[2] else None
        return grad_x, grad_w, grad_b


_GAMMA, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix64(xp, z):
    """SplitMix64's output function on a uint64 array (its arithmetic wraps mod 2⁶⁴)."""
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_M1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_M2)
    return z ^ (z >> xp.uint64(31))


def counter_uniform(xp, shape, seed: int):
    """Uniform floats in [0, 1), float64, of ``shape``: a hash of (seed, element index).

    Element i is SplitMix64's output function (Steele, Lea & Flood, "Fast
    Splittable Pseudorandom Number Generators", OOPSLA 2014) applied to
    ``s + (i + 1)·γ`` with γ = 0x9E3779B97F4A7C15 and ``s`` the seed, itself
    mixed so that nearby seeds start far apart; the top 53 bits are scaled
    by 2⁻⁵³. It is a counter-based generator (Salmon et al., "Parallel
    Random Numbers: As Easy as 1, 2, 3", SC 2011): nothing is stored between
    calls, the values depend only on ``seed`` (which callers take from the
    host generator, so a checkpoint of it fixes every later draw), and NumPy
    and CuPy give identical values, as uint64 arithmetic wraps alike on both.
    """
    size = 1
    for d in shape:
        size *= d
    start = _mix64(xp, xp.asarray([seed % (1 << 64)], dtype=xp.uint64))  # on the device: no wait
    z = _mix64(xp, xp.arange(1, size + 1, dtype=xp.uint64) * xp.uint64(_GAMMA) + start)
    return ((z >> xp.uint64(11)).astype(xp.float64) * 2.0**-53).reshape(shape)


class Dropout(Function):
    """Inverted dropout: ``y = x · mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``.

    Scaling by 1/(1-p) at training time keeps E[y] = x, so eval is the
    identity. Gradient: y is x times a constant, ``grad_x = g · mask / (1 - p)``.
    Saves: the scaled mask.

    The mask is ``counter_uniform(seed) >= p`` with one seed drawn from the
    host generator per call, made on the array's own device: the same masks
    on NumPy and CuPy, and after a resume (the host generator is in the
    checkpoint; CuPy's own generator is not and is not used).

    References
    ----------
    N. Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
    from Overfitting", JMLR 15 (2014), Sec. 10 (the scaling).
    """

    @staticmethod
    def forward(ctx, x, *, p):
        seed = int(backend.host_rng().integers(2**63))
        mask = (counter_uniform(ctx.xp, x.shape, seed) >= p).astype(x.dtype)
        if p < 1:
            mask *= 1 / (1 - p)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return g * mask


def linear(x, weight, bias=None):
    """``x Wᵀ + b``, as PyTorch's ``linear``.

    Parameters
    ----------
    x : Tensor, shape (..., in)
    weight : Tensor, shape (out, in)
    bias : Tensor of shape (out,), optional

    Returns
    -------
    Tensor, shape (..., out)

    Raises
    ------
    ValueError
        If the last axis of x is not ``in`` or the bias is not (out,); names
        both shapes.
    """
    return Linear.apply(x, weight, bias)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : Tensor, any shape
    p : float
        Probability of zeroing, in [0, 1].
    training : bool
        False (eval) or p = 0 returns x itself.

    Returns
    -------
    Tensor, same shape and dtype as x

    Raises
    ------
    ValueError
        If p is outside [0, 1].

    Notes
    -----
    The mask is :func:`counter_uniform` of one seed drawn from
    :func:`minicon.backend.host_rng` (seeded by ``minicon.manual_seed`` and
    saved in checkpoints), computed on the array's device: the same masks on
    NumPy and CuPy. See :class:`Dropout`.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, p=p)
