def aligned_loss(t, n):
    s = min(np.exp(t), 100.0)
    return np.log1p((n - 1) * np.exp(-s))

def aligned_grad(t, n):
    s = np.exp(t)
    if s >= 100:
        return 0.0
    return -s * (n - 1) * np.exp(-s) / (1 + (n - 1) * np.exp(-s))
