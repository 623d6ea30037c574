def bn_eval_backward(g, gamma, running_var, eps=1e-5):
    return gamma * g / np.sqrt(running_var + eps)
