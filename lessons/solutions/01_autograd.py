def value_pow(a, p):
    out = Value(a.data ** p, (a,), f"**{p}")
    def push():
        a.grad += p * a.data ** (p - 1) * out.grad
    out.push = push
    return out
