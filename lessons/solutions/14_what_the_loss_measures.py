def infonce_estimate_from_logits(q, k, tau):
    uq = q / np.linalg.norm(q, axis=1, keepdims=True)
    uk = k / np.linalg.norm(k, axis=1, keepdims=True)
    scores = uq @ uk.T / tau
    top = scores.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    return float(np.log(len(q)) - (lse - np.diag(scores)).mean())
