
def uniformity(z, t=2.0):
    xp = array_module(z)
    u = z / xp.linalg.norm(z, axis=1, keepdims=True)
    i, j = xp.triu_indices(z.shape[0], k=1)
    sq = xp.maximum(2 - 2 * (u @ u.T)[i, j], 0)   # |a - b|² = 2 - 2 a·b on the unit sphere; rounding can dip below 0
    v = -t * sq
    m = v.max()
    return float(m + xp.log(xp.exp(v - m).mean()))
### NEXT SOLUTION
def conv_intensity(m, c, f):
    k = 9 * c
    return 2 * m * k * f / (4 * (m * k + k * f + m * f))
