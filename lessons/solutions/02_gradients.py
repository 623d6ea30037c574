class LogSigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        xp = ctx.xp
        ctx.save_for_backward(x)
        return -xp.logaddexp(0, -x)         # log σ(x) = -log(1 + e^{-x}), stable

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved
        xp = ctx.xp
        sig = xp.exp(-xp.logaddexp(0, -x))
        return (1 - sig) * grad_out
