"""Each loss of ``minicon.losses`` composed from primitive minicon ops.

Autograd differentiates these through ops whose gradients are tested on their
own, so they are the independent reference for every fused, hand-derived
backward ("fused backward equals composed backward"), and the baseline of
``benchmarks/bench_losses.py``. They follow the same definitions (see each
fused class) but make no effort at speed or at extremes: the norm is
``sqrt(Σx²)`` (no overflow guard; sqrt has an infinite slope at an all-zero
row), so use them on ordinary inputs only.
"""

import minicon
from minicon import Tensor, backend


def _xp(t):
    return backend.array_module(t.data)


def normalize_composed(x, eps=1e-12):
    """x / max(‖x‖, eps) along the last axis."""
    return x / (x * x).sum(axis=-1, keepdims=True).sqrt().clip(low=eps)


def _diagonal_mask(xp, m, dtype):
    """An m×m constant: -inf on the diagonal, 0 elsewhere (adding it masks S_ii)."""
    return Tensor._wrap(xp.where(xp.eye(m, dtype=bool), -xp.inf, 0).astype(dtype))


def cross_entropy_composed(logits, targets):
    """-mean_i log_softmax(logits)_{i, t_i}."""
    xp = _xp(logits)
    rows = xp.arange(logits.shape[0])
    return -minicon.log_softmax(logits, axis=1)[rows, xp.asarray(targets)].mean()


def nt_xent_composed(z1, z2, temperature=0.5):
    """SimCLR's NT-Xent: log-softmax of masked cosine logits, positives picked by index."""
    xp = _xp(z1)
    n = z1.shape[0]
    z = normalize_composed(minicon.concatenate([z1, z2], axis=0))
    logits = (z @ z.T) / temperature + _diagonal_mask(xp, 2 * n, z.dtype)
    rows = xp.arange(2 * n)
    return -minicon.log_softmax(logits, axis=1)[rows, (rows + n) % (2 * n)].mean()


def info_nce_composed(q, k, queue, temperature=0.2):
    """MoCo's InfoNCE: [q̂·k̂ (N×1) | q̂ ûᵀ (N×K)] / τ, cross-entropy against column 0."""
    q_hat = normalize_composed(q)
    k_hat = normalize_composed(k.detach())
    negatives = normalize_composed(queue.detach())
    positive = (q_hat * k_hat).sum(axis=1, keepdims=True)
    logits = minicon.concatenate([positive, q_hat @ negatives.T], axis=1) / temperature
    return -minicon.log_softmax(logits, axis=1)[:, 0].mean()


def clip_loss_composed(image_emb, text_emb, logit_scale):
    """CLIP: mean of the row and column cross-entropies of min(e^t, 100) · Î T̂ᵀ."""
    xp = _xp(image_emb)
    logits = (normalize_composed(image_emb) @ normalize_composed(text_emb).T) * logit_scale.exp().clip(
        high=100.0
    )
    rows = xp.arange(image_emb.shape[0])
    image_to_text = -minicon.log_softmax(logits, axis=1)[rows, rows].mean()
    text_to_image = -minicon.log_softmax(logits, axis=0)[rows, rows].mean()
    return (image_to_text + text_to_image) / 2


def supcon_composed(z, labels, temperature=0.1):
    """SupCon L_out: the log-probabilities of (anchor, positive) pairs picked by index,
    weighted 1/|P(i)|, summed and divided by the number of anchors with positives."""
    xp = _xp(z)
    m = z.shape[0]
    labels = xp.asarray(labels)
    z_hat = normalize_composed(z)
    log_prob = minicon.log_softmax((z_hat @ z_hat.T) / temperature + _diagonal_mask(xp, m, z.dtype), axis=1)
    positives = (labels[:, None] == labels[None, :]) & ~xp.eye(m, dtype=bool)
    counts = positives.sum(axis=1)
    anchors, partners = xp.nonzero(positives)
    weights = Tensor._wrap((1.0 / counts[anchors]).astype(z.dtype))
    return -(log_prob[anchors, partners] * weights).sum() / max(int((counts > 0).sum()), 1)
