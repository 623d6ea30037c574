"""MoCo's InfoNCE loss against a queue of negative keys, as one fused ``Function``."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ._checks import check_embeddings, check_same_shape, check_temperature
from .cross_entropy import softmax_logsumexp_
from .normalize import l2_normalize, l2_normalize_backward


class InfoNCE(Function):
    """InfoNCE: each query must pick its own key out of 1 + K candidates (MoCo).

    Definition. Normalize the rows: q̂ = q/‖q‖, k̂ = k/‖k‖, û_j = queue_j/‖queue_j‖
    (idempotent for keys already normalized by :class:`MemoryQueue`). Row i of
    the N×(1+K) logits is::

        l_i0 = q̂_i·k̂_i / τ                  (the positive: an N×1 column)
        l_ij = q̂_i·û_j / τ,  j = 1..K      (the negatives: q̂ ûᵀ / τ, N×K)
        L    = (1/N) Σ_i -log( exp(l_i0) / Σ_{j=0}^{K} exp(l_ij) ) = (1/N) Σ_i (lse_i - l_i0)

    i.e. cross-entropy with target class 0 for every row. The positive is
    kept as an (N, 1) column: a flat (N,) vector placed beside the N×K block
    would broadcast to N×N (``l_pos[:, None]`` vs ``l_pos[None, :]``), silently
    pairing every query with every key.

    Gradient. With P the row softmax of the logits, ∂L/∂l_ij = (P_ij - δ_j0)/N.
    q̂_i enters l_i0 through k̂_i and l_ij through û_j, so
    ∂L/∂q̂_i = ((P_i0 - 1) k̂_i + Σ_j P_ij û_j) / (Nτ), i.e.
    ``grad_q̂ = ((P[:, :1] - 1) * k̂ + P[:, 1:] @ û) / (Nτ)`` (one N×K by K×D
    GEMM), then through the normalization,
    ∂L/∂q_i = (∂L/∂q̂_i - q̂_i (q̂_i·∂L/∂q̂_i)) / ‖q_i‖; all times the upstream g.
    ``k`` and ``queue`` get NO gradient (None even if they require one): in
    MoCo the keys come from the momentum encoder, updated by EMA, not by
    backpropagation.

    Stability: row-max subtraction before exp; fine in float32 at τ = 0.01.

    Shapes: q, k (N, D), N ≥ 1; queue (K, D), K ≥ 1; L a scalar of q's dtype.
    Saves: q̂ and its norms (normalization backward), k̂ and û (the GEMM
    factors of grad_q̂; fresh arrays, so enqueueing into the live queue
    buffer before ``backward`` cannot change this step's gradient) and P
    (N×(1+K)).

    Raises
    ------
    ValueError
        If temperature ≤ 0, q or k is not (N, D) floating, their shapes
        differ, or queue is not (K, D) with K ≥ 1 and q's D; names the argument.

    References
    ----------
    He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, eq. 1 and Algorithm 1; τ = 0.2 from
    Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive
    Learning" (MoCo v2), 2020; van den Oord, Li & Vinyals, "Representation
    Learning with Contrastive Predictive Coding", 2018, eq. 4.
    """

    @staticmethod
    def forward(ctx, q, k, queue, *, temperature=0.2):
        xp = ctx.xp
        check_temperature("info_nce", temperature)
        check_embeddings("info_nce", "q", q)
        check_same_shape("info_nce", "q", q, "k", k)
        check_embeddings("info_nce", "queue", queue, 1, " (the negatives)", letters="(K, D)")
        if queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"info_nce: queue must be (K, D) with q's D = {q.shape[1]}, got queue "
                f"{tuple(queue.shape)} and q {tuple(q.shape)}"
            )
        q_hat, q_norms = l2_normalize(q)
        k_hat, _ = l2_normalize(k)
        negatives, _ = l2_normalize(queue)
        positive = (q_hat * k_hat).sum(axis=1, keepdims=True)  # (N, 1), not (N,): see docstring
        logits = xp.concatenate([positive, q_hat @ negatives.T], axis=1)
        logits *= 1.0 / temperature
        positive_logits = logits[:, 0].copy()
        probs, m, r = softmax_logsumexp_(logits)
        ctx.save_for_backward(q_hat, q_norms, k_hat, negatives, probs)
        ctx.temperature = temperature
        return xp.asarray((r[:, 0] - (positive_logits - m[:, 0])).mean())

    @staticmethod
    def backward(ctx, g):
        q_hat, q_norms, k_hat, negatives, probs = ctx.saved
        grad_q_hat = probs[:, 1:] @ negatives
        grad_q_hat += (probs[:, :1] - 1) * k_hat
        grad_q_hat *= g / (len(q_hat) * ctx.temperature)
        return l2_normalize_backward(grad_q_hat, q_hat, q_norms), None, None


def info_nce(q, k, queue, temperature: float = 0.2) -> Tensor:
    """MoCo's InfoNCE loss of queries against their keys and a queue of negatives.

    Compute the loss of a step with the queue as it was BEFORE this step's
    keys are added, then enqueue them (MoCo, Algorithm 1)::

        loss = info_nce(q, k, queue.keys(), temperature)
        queue.enqueue(k)

    Parameters
    ----------
    q : Tensor, shape (N, D)
        Queries from the encoder (gets the gradient). Need not be normalized.
    k : Tensor or array, shape (N, D)
        Keys of the same images from the momentum encoder (no gradient).
    queue : Tensor or array, shape (K, D)
        K negative keys, e.g. ``MemoryQueue.keys()`` (no gradient). K ≥ 1.
    temperature : float
        τ > 0 (MoCo v1: 0.07, MoCo v2: 0.2).

    Returns
    -------
    Tensor, shape ()
        Mean over the N queries of -log p(positive), in nats.

    Raises
    ------
    ValueError
        For temperature ≤ 0 or mismatched shapes (names the argument).

    See :class:`InfoNCE` for the definition, gradient derivation and source.
    """
    return InfoNCE.apply(q, k, queue, temperature=temperature)
