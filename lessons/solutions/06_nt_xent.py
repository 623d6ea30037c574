def one_way_loss(z1, z2, tau):
    Z = np.concatenate([z1, z2]); n = len(z1)
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    logits = U[:n] @ U.T / tau
    logits[np.arange(n), np.arange(n)] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    lp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -lp[np.arange(n), np.arange(n) + n].mean()

def one_way_grad(z1, z2, tau):
    Z = np.concatenate([z1, z2]); n = len(z1)
    norms = np.linalg.norm(Z, axis=1, keepdims=True); U = Z / norms
    logits = U[:n] @ U.T / tau
    logits[np.arange(n), np.arange(n)] = -np.inf
    P = np.exp(logits - logits.max(axis=1, keepdims=True)); P /= P.sum(axis=1, keepdims=True)
    Y = np.zeros_like(P); Y[np.arange(n), np.arange(n) + n] = 1
    G = (P - Y) / (n * tau)                       # n x 2n
    gU = np.zeros_like(U); gU[:n] += G @ U; gU += G.T @ U[:n]
    gZ = (gU - (gU * U).sum(axis=1, keepdims=True) * U) / norms
    return gZ[:n], gZ[n:]
### NEXT SOLUTION
def largest_tau(n, target):
    return 1 / np.log((2 * n - 2) / np.expm1(target))
