def random_grayscale(batch, p, rng):
    gray = (0.299 * batch[:, 0] + 0.587 * batch[:, 1] + 0.114 * batch[:, 2])[:, None]
    pick = rng.random(len(batch)) < p
    return np.where(pick[:, None, None, None], np.repeat(gray, 3, axis=1), batch)
