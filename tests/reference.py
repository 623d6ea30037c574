"""Plain-Python references: the same quantities as minicon's fast code, written
as the loops of their textbook definitions (``math`` only, no arrays), so the
fast versions are tested against something obviously right.
"""

import math

# Losses: double loops over anchors and candidates (tests/test_losses.py, tests/test_queue.py).
# Inputs are lists of rows (or host arrays, iterated row by row); results are floats.


def _unit(v, eps=1e-12):
    norm = math.sqrt(sum(a * a for a in v))
    return [a / max(norm, eps) for a in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def normalize_loop(x):
    """Each row divided by max(its L2 norm, 1e-12)."""
    return [_unit([float(a) for a in row]) for row in x]


def cross_entropy_loop(logits, targets):
    """(1/N) Σ_i [log Σ_j exp(x_ij) - x_{i,t_i}]."""
    rows = [[float(a) for a in row] for row in logits]
    return sum(_logsumexp(row) - row[int(t)] for row, t in zip(rows, targets)) / len(rows)


def nt_xent_loop(z1, z2, temperature):
    """SimCLR eq. 1 averaged over the 2N anchors of [z1; z2]; positive of i is (i + N) mod 2N."""
    z = normalize_loop(list(z1) + list(z2))
    m, n = len(z), len(z) // 2
    total = 0.0
    for i in range(m):
        others = [_dot(z[i], z[j]) / temperature for j in range(m) if j != i]
        total += _logsumexp(others) - _dot(z[i], z[(i + n) % m]) / temperature
    return total / m


def info_nce_loop(q, k, queue, temperature):
    """MoCo eq. 1 averaged over the N queries: candidates are k_i then every queue row."""
    q, k, queue = normalize_loop(q), normalize_loop(k), normalize_loop(queue)
    total = 0.0
    for qi, ki in zip(q, k):
        logits = [_dot(qi, ki) / temperature] + [_dot(qi, u) / temperature for u in queue]
        total += _logsumexp(logits) - logits[0]
    return total / len(q)


def clip_loss_loop(image_emb, text_emb, logit_scale):
    """CLIP: mean of the image→text (rows) and text→image (columns) cross-entropies."""
    images, texts = normalize_loop(image_emb), normalize_loop(text_emb)
    scale = min(math.exp(float(logit_scale)), 100.0)
    n = len(images)
    logits = [[scale * _dot(images[i], texts[j]) for j in range(n)] for i in range(n)]
    rows = sum(_logsumexp(logits[i]) - logits[i][i] for i in range(n)) / n
    cols = sum(_logsumexp([logits[i][j] for i in range(n)]) - logits[j][j] for j in range(n)) / n
    return (rows + cols) / 2


def supcon_loop(z, labels, temperature):
    """Khosla et al. eq. 2 (L_out) averaged over the anchors that have a positive; 0 if none."""
    z = normalize_loop(z)
    labels = [int(y) for y in labels]
    total, anchors = 0.0, 0
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = _logsumexp([_dot(z[i], z[a]) / temperature for a in range(len(z)) if a != i])
        total += -sum(_dot(z[i], z[p]) / temperature - denominator for p in positives) / len(positives)
        anchors += 1
    return total / anchors if anchors else 0.0


def ring_buffer_loop(slots, ptr, batches):
    """A FIFO queue written one key at a time: (slots, ptr) after every key of every batch."""
    slots = [list(s) for s in slots]
    for batch in batches:
        for key in normalize_loop(batch):
            slots[ptr] = key
            ptr = (ptr + 1) % len(slots)
    return slots, ptr
