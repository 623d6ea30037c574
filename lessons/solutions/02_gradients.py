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
### NEXT SOLUTION
class PassesWithOnes(Function):
    @staticmethod
    def forward(ctx, x):
        return x[::-1].copy()                 # y_i = x_{n-1-i}

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out                       # wrong: should be reversed; right when v is constant
