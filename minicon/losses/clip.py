"""CLIP's symmetric image–text contrastive loss with a learnable temperature."""

from __future__ import annotations

import math

from ..autograd import Function, Tensor
from ..backend import default_dtype, get_xp
from ._checks import check_embeddings, check_same_shape, check_temperature
from .cross_entropy import softmax_logsumexp_
from .normalize import l2_normalize, l2_normalize_backward

MAX_LOGIT_SCALE = 100.0  # CLIP §2.5: the logits are never scaled by more than 100


class CLIPLoss(Function):
    """Mean of image→text and text→image cross-entropy over N×N scaled cosines (CLIP).

    Definition. Normalize the rows, Î = image/‖image‖ and T̂ = text/‖text‖;
    C = Î T̂ᵀ (N×N cosines); s = min(exp(t), 100) with t = ``logit_scale``
    = log(1/τ); logits l = s·C. Pair i (image i, text i) is the positive of
    row i and of column i::

        L = ½ [ (1/N) Σ_i (logsumexp_j l_ij - l_ii)      (each image picks its text)
              + (1/N) Σ_j (logsumexp_i l_ij - l_jj) ]    (each text picks its image)

    Gradient. With Pʳ the row softmax and Pᶜ the column softmax of l,
    ∂L/∂l_ij = G_ij = (Pʳ_ij + Pᶜ_ij - 2δ_ij) / 2N (the two cross-entropies'
    softmax-minus-onehot, one per direction). Since l = s·Î T̂ᵀ:
    ∂L/∂Î = s G T̂, ∂L/∂T̂ = s Gᵀ Î, then each through the normalization,
    ∂L/∂x_k = (∂L/∂x̂_k - x̂_k (x̂_k·∂L/∂x̂_k)) / ‖x_k‖. For the temperature,
    ∂L/∂s = Σ_ij G_ij C_ij and ds/dt = exp(t) = s while exp(t) ≤ 100, so
    ∂L/∂t = s Σ_ij G_ij C_ij. Where exp(t) > 100 the clamp is active and
    ∂L/∂t = 0 (as ``torch.clamp``): t then only moves through weight decay or
    an explicit reset, so a learned scale stops at 100. All times upstream g.

    Shapes: image_emb, text_emb (N, D), N ≥ 2; logit_scale a one-element
    tensor (shape () or (1,)); L a scalar. Saves: Î, T̂ and their norms (GEMM
    factors and normalization backward), C (for ∂L/∂s), Pʳ + Pᶜ (one N×N
    array is all the gradient needs), s and whether it was clamped.

    Raises
    ------
    ValueError
        If the embeddings are not (N, D) floating with N ≥ 2, their shapes
        differ, or logit_scale has more than one element; names the argument.

    References
    ----------
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021, Figure 3 (pseudocode) and §2.5 (τ initialized to
    0.07, logits scaled by at most 100).
    """

    @staticmethod
    def forward(ctx, image_emb, text_emb, logit_scale):
        xp = ctx.xp
        check_embeddings("clip_loss", "image_emb", image_emb, 2, " (the other N-1 pairs are the negatives)")
        check_same_shape("clip_loss", "image_emb", image_emb, "text_emb", text_emb)
        t = xp.asarray(logit_scale)
        if t.size != 1:
            raise ValueError(
                f"clip_loss: logit_scale must be a one-element tensor (shape () or (1,)), "
                f"got shape {tuple(t.shape)}"
            )
        i_hat, i_norms = l2_normalize(image_emb)
        t_hat, t_norms = l2_normalize(text_emb)
        cosine = i_hat @ t_hat.T
        exp_t = xp.exp(t.reshape(()))
        scale = xp.minimum(exp_t, MAX_LOGIT_SCALE)
        logits = cosine * scale
        positive = xp.diagonal(logits).copy()
        p_row, m_row, r_row = softmax_logsumexp_(logits.copy(), axis=1)
        p_col, m_col, r_col = softmax_logsumexp_(logits, axis=0)
        p_row += p_col
        # d min(e^t, 100)/dt, kept on the device: a bool() here would wait for the GPU every step
        slope = xp.where(exp_t > MAX_LOGIT_SCALE, 0, scale)
        ctx.save_for_backward(i_hat, i_norms, t_hat, t_norms, cosine, p_row, scale, slope)
        ctx.t_shape = t.shape
        loss = ((r_row[:, 0] - (positive - m_row[:, 0])).mean()
                + (r_col[0, :] - (positive - m_col[0, :])).mean()) / 2
        return xp.asarray(loss, dtype=cosine.dtype)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        i_hat, i_norms, t_hat, t_norms, cosine, p_sum, scale, slope = ctx.saved
        n = len(i_hat)
        grad_logits = p_sum * (g / (2 * n))
        diag = xp.arange(n)
        grad_logits[diag, diag] -= g / n
        grad_t = None
        if ctx.needs_input_grad[2]:
            grad_t = ((grad_logits * cosine).sum() * slope).reshape(ctx.t_shape)
        grad_cosine = grad_logits * scale
        grad_image = l2_normalize_backward(grad_cosine @ t_hat, i_hat, i_norms)
        grad_text = l2_normalize_backward(grad_cosine.T @ i_hat, t_hat, t_norms)
        return grad_image, grad_text, grad_t


def clip_loss(image_emb, text_emb, logit_scale) -> Tensor:
    """CLIP's symmetric contrastive loss of N matching image/text embedding pairs.

    Parameters
    ----------
    image_emb, text_emb : Tensor, shape (N, D)
        Row i of each comes from the same pair. Need not be normalized. N ≥ 2.
    logit_scale : Tensor, shape () or (1,)
        The learnable t = log(1/τ); the logits are scaled by min(exp(t), 100)
        and its gradient is 0 while the clamp is active. Make it with
        :func:`init_logit_scale`.

    Returns
    -------
    Tensor, shape ()
        The mean of the image→text and text→image cross-entropies, in nats.

    Raises
    ------
    ValueError
        For N < 2, mismatched shapes or a logit_scale with several elements.

    See :class:`CLIPLoss` for the definition, gradient derivation and source.
    """
    return CLIPLoss.apply(image_emb, text_emb, logit_scale)


def init_logit_scale(temperature: float = 0.07) -> Tensor:
    """A learnable scalar t = log(1/temperature), CLIP's initialization (τ = 0.07, t ≈ 2.659).

    Returns
    -------
    Tensor, shape (), default dtype, ``requires_grad=True``

    Raises
    ------
    ValueError
        If temperature ≤ 0.
    """
    check_temperature("init_logit_scale", temperature)
    value = get_xp().asarray(math.log(1.0 / temperature), dtype=default_dtype())
    return Tensor(value, requires_grad=True)
