"""Checking hand-derived gradients against central finite differences.

For a function ``f`` with output ``y`` and a random upstream gradient ``v``,
reverse mode computes the vector–Jacobian product ``Jᵀv``: the gradient of
the scalar φ(x) = ⟨v, f(x)⟩. Central differences estimate the same thing,

    ∂φ/∂x_j ≈ (φ(x + ε e_j) - φ(x - ε e_j)) / (2ε),   error O(ε²),

one element at a time for small inputs, and for large ones along random
directions u (⟨Jᵀv, u⟩ against (φ(x + εu) - φ(x - εu)) / 2ε), which needs
only two evaluations per direction. All of it runs in float64: in float32
the rounding error of φ, about 1e-7·|φ|/ε, swamps the derivative.

References
----------
CS231n, "Gradient checks" (https://cs231n.github.io/neural-networks-3/#gradcheck).
"""

from __future__ import annotations

import numpy

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _as_float64_inputs(inputs) -> list:
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            out.append(Tensor._wrap(x.data.astype("float64")))
            out[-1].requires_grad = x.requires_grad
        else:
            out.append(x)
    return out


def _phi(fn, inputs, v) -> float:
    with no_grad():
        y = fn(*inputs)
    return float((y.data * v).sum())


def gradcheck(
    fn,
    *inputs,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_elements: int = 64,
    directions: int = 8,
    seed: int = 0,
) -> bool:
    """Compare ``fn``'s backward with central finite differences in float64.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> Tensor`` of any shape, built from minicon ops.
    *inputs : Tensor or other
        Floating tensors with ``requires_grad=True`` are checked (after a
        float64 copy); everything else is passed through unchanged.
    eps : float
        Finite-difference step.
    atol, rtol : float
        An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    max_elements : int
        Inputs with at most this many elements are checked element by
        element; larger ones along ``directions`` random unit directions.
    seed : int
        Seed for the upstream gradient and the directions.

    Returns
    -------
    bool
        True (so it can be asserted); failures raise.

    Raises
    ------
    GradcheckError
        On the first disagreement, naming the input index, the element (or
        direction), both values and the relative error.
    ValueError
        If no input requires a gradient.
    TypeError
        If ``fn`` returns something other than a Tensor.
    """
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    rng = numpy.random.default_rng(seed)
    y = fn(*inputs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor built from minicon ops, got "
                        f"{type(y).__name__}; a float has no graph to differentiate")
    xp = backend.array_module(y.data)
    v = xp.asarray(rng.standard_normal(y.shape))
    for i in checked:
        inputs[i].grad = None
    y.backward(v)

    for i in checked:
        x = inputs[i]
        analytic = x.grad if x.grad is not None else xp.zeros_like(x.data)
        analytic = backend.to_host(analytic).astype(numpy.float64)
        base = x.data.copy()

        def numeric_along(direction) -> float:
            x.data = base + eps * direction
            plus = _phi(fn, inputs, v)
            x.data = base - eps * direction
            minus = _phi(fn, inputs, v)
            x.data = base
            return (plus - minus) / (2 * eps)

        if x.size <= max_elements:
            for flat in range(x.size):
                e = numpy.zeros(x.size)
                e[flat] = 1.0
                numeric = numeric_along(xp.asarray(e.reshape(x.shape)))
                where = numpy.unravel_index(flat, x.shape) if x.ndim else ()
                _compare(i, f"element {tuple(int(w) for w in where)}", analytic.flat[flat], numeric, atol, rtol)
        else:
            for d in range(directions):
                u = rng.standard_normal(x.shape)
                u /= numpy.linalg.norm(u)
                numeric = numeric_along(xp.asarray(u))
                _compare(i, f"random direction {d}", float((analytic * u).sum()), numeric, atol, rtol)
    return True


def _compare(index: int, where: str, analytic: float, numeric: float, atol: float, rtol: float) -> None:
    diff = abs(analytic - numeric)
    if not diff <= atol + rtol * abs(numeric):  # `not <=` also catches NaN
        rel = diff / max(abs(analytic), abs(numeric), 1e-12)
        raise GradcheckError(
            f"gradcheck: input {index}, {where}: analytic {analytic:.10g} vs numeric "
            f"{numeric:.10g} (relative error {rel:.3g}, atol {atol}, rtol {rtol})"
        )
