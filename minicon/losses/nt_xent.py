"""SimCLR's NT-Xent loss as one fused ``Function``."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ._checks import check_embeddings, check_same_shape, check_temperature
from .cross_entropy import softmax_logsumexp_
from .normalize import l2_normalize, l2_normalize_backward


class NTXent(Function):
    """Normalized temperature-scaled cross-entropy over 2N views (SimCLR).

    Definition (the notation of lesson 6). Stack the two views as
    z = [z1; z2] (2N×D) and normalize the rows: ẑ_i = z_i / ‖z_i‖. The cosine
    similarities are s_ij = ẑ_i·ẑ_j and the logits s_ij / τ. The positive of
    row i is p(i) = (i + N) mod 2N (the other view of the same image); every
    other row j ∉ {i, p(i)} is a negative. Row i's own similarity is removed
    by MASKING its logit to -inf before the softmax (exp(-inf) = 0), never by
    subtracting exp(1/τ) from the sum, which cancels catastrophically in
    float32 at small τ because exp(s_ii/τ) is then the largest term::

        ℓ_i = -log( exp(s_{i,p(i)}/τ) / Σ_{j≠i} exp(s_ij/τ) )
        L   = (1/2N) Σ_{i=1}^{2N} ℓ_i            (the mean over all 2N anchors)

    Gradient. Let P_ij = exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ) (P_ii = 0) and Y
    the 0/1 positive mask (Y_{i,p(i)} = 1, symmetric). Then
    ∂L/∂s_ij = G_ij = (P_ij - Y_ij) / (2Nτ), and G_ii = 0 (s_ii is a
    constant). Each ẑ_k enters s twice, as a row and as a column
    (ds_ij = dẑ_i·ẑ_j + ẑ_i·dẑ_j), so ∂L/∂ẑ = (G + Gᵀ) ẑ
    = (P + Pᵀ - 2Y) ẑ / (2Nτ): one 2N×2N add and one (2N×2N)(2N×D) GEMM.
    Through the normalization (see :class:`~minicon.losses.normalize.Normalize`),
    ∂L/∂z_k = (∂L/∂ẑ_k - ẑ_k (ẑ_k·∂L/∂ẑ_k)) / ‖z_k‖. The first N rows are z1's
    gradient, the last N z2's. Everything is scaled by the upstream g.

    Stability: row maxima are subtracted before exp (``softmax_logsumexp_``),
    so at τ = 0.01 (logits in [-100, 100]) nothing overflows in float32, and
    normalization is overflow-safe for any norm.

    Shapes: z1, z2 (N, D) with N ≥ 2, taken from the inputs at every call
    (never from a configured batch size); L a scalar of their dtype.
    Saves: ẑ (2N×D, both GEMM factors of the backward), the 2N norms (for the
    normalization's backward) and P (2N×2N, so backward does no exp).

    Raises
    ------
    ValueError
        If temperature ≤ 0, z1 is not (N, D) floating with N ≥ 2, or z2's
        shape differs from z1's; names the argument.

    References
    ----------
    Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020, eq. 1 and Algorithm 1.
    """

    @staticmethod
    def forward(ctx, z1, z2, *, temperature=0.5):
        xp = ctx.xp
        check_temperature("nt_xent", temperature)
        check_embeddings("nt_xent", "z1", z1, 2, " (the N-1 other pairs are the negatives)")
        check_same_shape("nt_xent", "z1", z1, "z2", z2)
        n = z1.shape[0]
        z_hat, norms = l2_normalize(xp.concatenate([z1, z2]))
        logits = z_hat @ z_hat.T
        logits *= 1.0 / temperature
        rows = xp.arange(2 * n)
        positive_logits = logits[rows, (rows + n) % (2 * n)]
        xp.fill_diagonal(logits, -xp.inf)
        probs, m, r = softmax_logsumexp_(logits)
        ctx.save_for_backward(z_hat, norms, probs)
        ctx.n, ctx.temperature = n, temperature
        return xp.asarray((r[:, 0] - (positive_logits - m[:, 0])).mean())

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        z_hat, norms, probs = ctx.saved
        n = ctx.n
        rows = xp.arange(2 * n)
        sym = probs + probs.T
        sym[rows, (rows + n) % (2 * n)] -= 2
        grad_z_hat = sym @ z_hat
        grad_z_hat *= g / (2 * n * ctx.temperature)
        grad_z = l2_normalize_backward(grad_z_hat, z_hat, norms)
        return grad_z[:n], grad_z[n:]


def nt_xent(z1, z2, temperature: float = 0.5) -> Tensor:
    """SimCLR's NT-Xent loss of two batches of views.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        Projections of the two augmented views; row i of z1 and row i of z2
        come from the same image. Need not be normalized (the loss L2-normalizes
        each row; all-zero rows are safe). N ≥ 2.
    temperature : float
        τ > 0 dividing the cosine similarities (SimCLR: 0.5 for CIFAR-10).

    Returns
    -------
    Tensor, shape ()
        Mean over the 2N anchors of -log of the softmax probability of the
        positive, in nats; log(2N - 1) when all similarities are equal.

    Raises
    ------
    ValueError
        For temperature ≤ 0, N < 2 or mismatched shapes (names the argument).

    See :class:`NTXent` for the definition, gradient derivation and source.
    """
    return NTXent.apply(z1, z2, temperature=temperature)
