def uniformity_grad(z, t=2.0):
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    u = z / norms
    i, j = np.triu_indices(len(u), k=1)
    d = ((u[i] - u[j]) ** 2).sum(axis=1)
    w = np.exp(-t * (d - d.min()))
    w /= w.sum()                                                # softmax weights of the pairs
    pull = (-2 * t * w)[:, None] * (u[i] - u[j])               # dL/du_i for each pair; dL/du_j is minus it
    g_u = np.zeros_like(u)
    np.add.at(g_u, i, pull)
    np.add.at(g_u, j, -pull)
    return (g_u - (g_u * u).sum(axis=1, keepdims=True) * u) / norms
