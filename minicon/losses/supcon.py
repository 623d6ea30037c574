"""The supervised contrastive loss (SupCon, L_out) as one fused ``Function``."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ._checks import check_embeddings, check_temperature
from .cross_entropy import softmax_logsumexp_
from .normalize import l2_normalize, l2_normalize_backward


class SupCon(Function):
    """Supervised contrastive loss L_out: every same-label sample is a positive.

    Definition. Normalize the M rows, ẑ_i = z_i/‖z_i‖, and let S_ij = ẑ_i·ẑ_j/τ.
    For anchor i, A(i) = {a ≠ i} (every other sample), P(i) = {p ≠ i : y_p = y_i}
    (its positives; the anchor is NEVER its own positive) and
    W_ij = [j ∈ P(i)] / |P(i)|. S_ii is masked to -inf (removed from the
    softmax), as in :class:`~minicon.losses.nt_xent.NTXent`::

        ℓ_i = -(1/|P(i)|) Σ_{p∈P(i)} log( exp(S_ip) / Σ_{a∈A(i)} exp(S_ia) )
            = lse_i - Σ_j W_ij S_ij
        L   = (1/|I⁺|) Σ_{i∈I⁺} ℓ_i,    I⁺ = {i : |P(i)| > 0}

    THE MEAN is over the anchors that have at least one positive. An anchor
    whose label occurs once has no ℓ_i (eq. 2 would divide by |P(i)| = 0): it
    contributes zero and is not counted, and still serves as a negative for
    the others; with no positive anywhere, L = 0 with zero gradient (no NaN).
    HobbitLong/SupContrast's ``SupConLoss`` (after its edge-case fix) divides
    by all M anchors instead, i.e. its value is L·|I⁺|/M (times its extra
    τ/base_temperature factor, which the paper does not have); the two agree
    whenever every label occurs at least twice, e.g. with two views of every
    image. With labels [0..N-1, 0..N-1] for [z1; z2] this is exactly NT-Xent.

    Gradient. With P_ij the masked row softmax (P_ii = 0), ∂ℓ_i/∂S_ij =
    P_ij - W_ij, so ∂L/∂S_ij = G_ij = [i ∈ I⁺](P_ij - W_ij)/|I⁺|. Each ẑ_k
    enters as a row and as a column of S: ∂L/∂ẑ = (G + Gᵀ) ẑ / τ, then
    through the normalization ∂L/∂z_k = (∂L/∂ẑ_k - ẑ_k(ẑ_k·∂L/∂ẑ_k))/‖z_k‖;
    times the upstream g. Labels get no gradient.

    Shapes: z (M, D) with M ≥ 2, labels (M,) of any comparable dtype; L a
    scalar of z's dtype. Saves: ẑ and the norms (GEMM factor, normalization
    backward), R = [i ∈ I⁺](P - W) (M×M; G without the 1/|I⁺|) and |I⁺|.

    Raises
    ------
    ValueError
        If temperature ≤ 0, z is not (M, D) floating with M ≥ 2, or labels
        are not of shape (M,); names the argument.

    References
    ----------
    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, eq. 2
    (L_out^sup, shown there to beat L_in of eq. 3).
    """

    @staticmethod
    def forward(ctx, z, labels, *, temperature=0.1):
        xp = ctx.xp
        check_temperature("supcon", temperature)
        check_embeddings("supcon", "z", z, 2, " (an anchor's positives are other samples)", "(M, D)")
        labels = xp.asarray(labels)
        if labels.shape != z.shape[:1]:
            raise ValueError(
                f"supcon: labels must have shape ({z.shape[0]},) to match z {tuple(z.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        z_hat, norms = l2_normalize(z)
        logits = z_hat @ z_hat.T
        logits *= 1.0 / temperature
        positives = labels[:, None] == labels[None, :]
        xp.fill_diagonal(positives, False)
        counts = positives.sum(axis=1, keepdims=True)
        has_positive = counts > 0
        weights = positives / xp.maximum(counts, 1).astype(z.dtype)
        mean_positive = (weights * logits).sum(axis=1)  # before masking: 0 · -inf would be NaN
        xp.fill_diagonal(logits, -xp.inf)
        probs, m, r = softmax_logsumexp_(logits)
        anchors = xp.maximum(has_positive.sum(), 1).astype(z.dtype)  # on the device: int() would sync
        per_anchor = xp.where(has_positive[:, 0], r[:, 0] - (mean_positive - m[:, 0]), 0)
        probs -= weights
        probs *= has_positive
        ctx.save_for_backward(z_hat, norms, probs)
        ctx.anchors, ctx.temperature = anchors, temperature
        return xp.asarray(per_anchor.sum() / anchors, dtype=z.dtype)

    @staticmethod
    def backward(ctx, g):
        z_hat, norms, residual = ctx.saved
        grad_z_hat = (residual + residual.T) @ z_hat
        grad_z_hat *= g / (ctx.anchors * ctx.temperature)
        return l2_normalize_backward(grad_z_hat, z_hat, norms), None


def supcon(z, labels, temperature: float = 0.1) -> Tensor:
    """Khosla et al.'s supervised contrastive loss (L_out) of labelled embeddings.

    For several views, stack them: ``supcon(concatenate([z1, z2]),
    concatenate([y, y]))``.

    Parameters
    ----------
    z : Tensor, shape (M, D)
        Embeddings (projections); need not be normalized. M ≥ 2.
    labels : Tensor or array, shape (M,)
        Class of each row; rows with equal labels are positives of each other.
    temperature : float
        τ > 0 (the paper: 0.1).

    Returns
    -------
    Tensor, shape ()
        Mean of ℓ_i over the anchors that have at least one positive, in nats;
        0 when no anchor has one.

    Raises
    ------
    ValueError
        For temperature ≤ 0, M < 2 or labels of the wrong shape (names the argument).

    See :class:`SupCon` for the definition, the choice of mean, the gradient
    derivation and the source.
    """
    return SupCon.apply(z, labels, temperature=temperature)
