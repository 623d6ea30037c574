def bn_eval_backward(g, gamma, running_var, eps=1e-5):
    return gamma * g / np.sqrt(running_var + eps)
### NEXT SOLUTION
def bn_train_backward(g, x, gamma, eps=1e-5):
    sigma = np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) / sigma
    return gamma / sigma * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
