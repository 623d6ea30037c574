def avg_pool_2x2(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))

def avg_pool_2x2_backward(g):
    return np.repeat(np.repeat(g, 2, axis=2), 2, axis=3) / 4
