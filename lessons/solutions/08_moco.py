def info_nce_grad_tau(q, k, queue, tau):
    qh, kh, uh = normalize(q), normalize(k), normalize(queue)
    s = np.concatenate([(qh * kh).sum(axis=1, keepdims=True), qh @ uh.T], axis=1)   # cosines s_ij
    P = np.exp((s - s.max(axis=1, keepdims=True)) / tau); P /= P.sum(axis=1, keepdims=True)
    # L_i = -s_i0/τ + log Σ_j exp(s_ij/τ)  =>  dL_i/dτ = (s_i0 - Σ_j P_ij s_ij) / τ²
    return ((s[:, 0] - (P * s).sum(axis=1)) / tau ** 2).mean()
### NEXT SOLUTION
def expected_first_loss(s_pos, K, D, tau):
    return -s_pos / tau + np.log(np.exp(s_pos / tau) + K * np.exp(1 / (2 * D * tau ** 2)))
