"""Matrix multiplication with NumPy's ``matmul`` semantics."""

from __future__ import annotations

from .. import backend
from ..autograd import Function, unbroadcast


class MatMul(Function):
    """``out = a @ b``: batched over leading axes, which broadcast.

    For matrices, out_ij = Σ_k a_ik b_kj, so ∂out_ij/∂a_ik = b_kj and
    ``grad_a = g @ bᵀ``, ``grad_b = aᵀ @ g`` (transposes of the last two
    axes). Batch axes that broadcasting repeated are summed back by
    ``unbroadcast``. A 1-D ``a`` is treated as a row (1×K) and a 1-D ``b`` as a
    column (K×1), whose added axis the result drops, as in NumPy.

    Shapes: a (..., N, K) or (K,); b (..., K, M) or (K,); out (..., N, M)
    with the batch axes broadcast. Saves: a and b.

    Raises
    ------
    ValueError
        If the inner sizes differ or the batch axes do not broadcast; names
        both shapes.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: needs tensors of at least 1 dimension, got {a.shape} and {b.shape}")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not align (inner sizes {k_a} != {k_b})"
            )
        backend.broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b = ctx.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = xp.expand_dims(g, -2 if b.ndim > 1 else 0)
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = unbroadcast(g @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = unbroadcast(xp.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return grad_a, grad_b
