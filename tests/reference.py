"""Plain-Python references: the same quantities as minicon's fast code, written
as the loops of their textbook definitions, so the fast versions are tested
against something obviously right. Slow, but each line is the definition, so
a disagreement points at the fast version.
"""

import math

import numpy as np

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
    """(1/N) Σ_i [log Σ_j exp(x_ij - m_i) - (x_{i,t_i} - m_i)], m_i = max_j x_ij: exact at any magnitude."""
    rows = [[float(a) for a in row] for row in logits]
    total = 0.0
    for row, t in zip(rows, targets):
        m = max(row)
        total += math.log(math.fsum(math.exp(v - m) for v in row)) - (row[int(t)] - m)
    return total / len(rows)


def softmax_loop(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / math.fsum(e) for v in e]


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


# ---------------------------------------------------------------------------
# Vision layers (issue 3): convolution, pooling, batch norm
# ---------------------------------------------------------------------------


def _pad(x, padding, fill=0.0):
    p = padding
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_naive(x, w, b, stride, padding):
    """out[n, f, p, q] = b[f] + Σ_{c,i,j} w[f, c, i, j] · xpad[n, c, S·p + i, S·q + j]."""
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = _pad(x, padding)
    ho, wo = _out_size(h, kh, stride, padding), _out_size(wd, kw, stride, padding)
    out = np.zeros((n, f, ho, wo))
    for i in range(n):
        for k in range(f):
            for p in range(ho):
                for q in range(wo):
                    window = xp[i, :, p * stride : p * stride + kh, q * stride : q * stride + kw]
                    out[i, k, p, q] = np.sum(window * w[k]) + (b[k] if b is not None else 0.0)
    return out


def conv2d_backward_naive(x, w, g, stride, padding):
    """(grad_x, grad_w, grad_b) of conv2d_naive for upstream gradient g, loop by loop."""
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = _pad(x, padding)
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros_like(w)
    grad_b = np.zeros(f)
    for i in range(n):
        for k in range(f):
            for p in range(g.shape[2]):
                for q in range(g.shape[3]):
                    rows = slice(p * stride, p * stride + kh)
                    cols = slice(q * stride, q * stride + kw)
                    grad_xp[i, :, rows, cols] += w[k] * g[i, k, p, q]
                    grad_w[k] += xp[i, :, rows, cols] * g[i, k, p, q]
                    grad_b[k] += g[i, k, p, q]
    grad_x = grad_xp[:, :, padding : padding + h, padding : padding + wd]
    return grad_x, grad_w, grad_b


def max_pool2d_naive(x, kernel, stride, padding, g=None):
    """Max pooling (padding -inf) and, given g, its gradient to the first maximum of each window."""
    n, c, h, w = x.shape
    xp = _pad(x, padding, -np.inf)
    ho, wo = _out_size(h, kernel, stride, padding), _out_size(w, kernel, stride, padding)
    out = np.zeros((n, c, ho, wo))
    grad_xp = np.zeros_like(xp)
    for i in range(n):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    best, where = -np.inf, None
                    for a in range(kernel):  # row-major: the first maximum wins ties
                        for b in range(kernel):
                            v = xp[i, ch, p * stride + a, q * stride + b]
                            if where is None or v > best:
                                best, where = v, (p * stride + a, q * stride + b)
                    out[i, ch, p, q] = best
                    if g is not None:
                        grad_xp[i, ch, where[0], where[1]] += g[i, ch, p, q]
    return out, grad_xp[:, :, padding : padding + h, padding : padding + w]


def avg_pool2d_naive(x, kernel, stride, padding, g=None):
    """Average pooling, zero padding counted in the divisor, and its gradient given g."""
    n, c, h, w = x.shape
    xp = _pad(x, padding)
    ho, wo = _out_size(h, kernel, stride, padding), _out_size(w, kernel, stride, padding)
    out = np.zeros((n, c, ho, wo))
    grad_xp = np.zeros_like(xp)
    for i in range(n):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    rows = slice(p * stride, p * stride + kernel)
                    cols = slice(q * stride, q * stride + kernel)
                    out[i, ch, p, q] = xp[i, ch, rows, cols].sum() / kernel**2
                    if g is not None:
                        grad_xp[i, ch, rows, cols] += g[i, ch, p, q] / kernel**2
    return out, grad_xp[:, :, padding : padding + h, padding : padding + w]


def adaptive_avg_pool2d_naive(x, out_h, out_w):
    """PyTorch's adaptive bins: bin i spans [floor(i·H/out), ceil((i+1)·H/out))."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        h0, h1 = (i * h) // out_h, -(-(i + 1) * h // out_h)
        for j in range(out_w):
            w0, w1 = (j * w) // out_w, -(-(j + 1) * w // out_w)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def batch_norm_naive(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """Batch norm channel by channel; returns (out, new_running_mean, new_running_var)."""
    c = x.shape[1]
    out = np.empty_like(x)
    new_mean, new_var = running_mean.copy(), running_var.copy()
    for k in range(c):
        values = x[:, k].ravel()
        if training:
            mu = values.sum() / len(values)
            var = ((values - mu) ** 2).sum() / len(values)
            unbiased = ((values - mu) ** 2).sum() / (len(values) - 1)
            new_mean[k] = (1 - momentum) * running_mean[k] + momentum * mu
            new_var[k] = (1 - momentum) * running_var[k] + momentum * unbiased
        else:
            mu, var = running_mean[k], running_var[k]
        out[:, k] = weight[k] * (x[:, k] - mu) / np.sqrt(var + eps) + bias[k]
    return out, new_mean, new_var
