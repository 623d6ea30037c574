def combine_mean_var(counts, means, centred):
    counts = np.asarray(counts, dtype=means.dtype)[:, None]
    total = counts.sum()
    mean = (counts * means).sum(axis=0) / total
    # each rank's centred sum about the global mean: its own plus n_r (mean_r - mean)^2
    m2 = (centred + counts * (means - mean) ** 2).sum(axis=0)
    return mean, m2 / total
