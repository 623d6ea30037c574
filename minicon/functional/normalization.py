"""Batch normalization with one fused, hand-derived backward."""

from __future__ import annotations

from ..autograd import Function, Tensor
from .im2col import channel_sum, to_nchw, to_nhwc


def _rows(x):
    """x as an (M, C) matrix of channel vectors: N×C as is, N×C×H×W channels-last."""
    return x if x.ndim == 2 else to_nhwc(x).reshape(-1, x.shape[1])


def _unrows(rows, shape: tuple):
    """Inverse of :func:`_rows`: back to ``shape`` (an NCHW view for 4-D)."""
    if len(shape) == 2:
        return rows
    n, c, h, w = shape
    return to_nchw(rows.reshape(n, h, w, c))


class BatchNorm(Function):
    """``y = γ · x̂ + β`` with ``x̂ = (x - μ) / √(σ² + ε)``, per channel.

    Training: μ and σ² are the mean and the BIASED variance of the channel
    over its M = N (or N·H·W) values; the running buffers are updated in
    place with momentum m: ``running_mean ← (1-m)·running_mean + m·μ`` and
    ``running_var ← (1-m)·running_var + m·σ²·M/(M-1)`` (the unbiased
    variance, PyTorch's convention). Eval: μ and σ² are the running buffers,
    so y is an affine map of x.

    Backward, training (Ioffe & Szegedy 2015, Sec. 3; here fused). With
    g = ∂L/∂y and σ̂ = √(σ² + ε), sums over the M values of a channel:

    * ``grad_β = Σ g`` and ``grad_γ = Σ g·x̂``;
    * ∂L/∂x̂ = γ g. x̂ depends on x directly and through μ and σ²; with
      ∂μ/∂x_k = 1/M and ∂σ²/∂x_k = 2(x_k - μ)/M the chain rule collapses to
      ``grad_x = (γ / σ̂) · (g - grad_β / M - x̂ · grad_γ / M)``
      (the gradient minus its mean and its projection on x̂).

    Synchronized (``comm`` given, training, P ranks): the M values of a
    channel are spread over the ranks, and μ, σ² must be those of all of them
    (SimCLR's global BN). Forward: one Allreduce of the per-channel sums
    Σ(x - K) and Σ(x - K)² (K = running mean, the same on every rank), then
    μ = K + Σ(x - K)/M and σ² = Σ(x - K)²/M - (μ - K)². Backward: the formula
    above with M global needs the global Σ g and Σ g·x̂, and x_k reaches every
    rank's y through μ and σ², which is exactly what those sums carry; one
    Allreduce of the two gives them. grad_γ and grad_β return this rank's
    share, which the gradient averaging sums.

    Backward, eval: μ, σ² are constants, so ``grad_x = γ g / σ̂`` and
    grad_γ, grad_β as above.

    Shapes: x (N, C) or (N, C, H, W); γ, β, buffers (C,). Computed on the
    (M, C) channels-last matrix of x; a 4-D output is the NCHW view of it.
    Saves: x (as that matrix: a view, as the graph keeps x alive anyway),
    μ, 1/σ̂ and γ/σ̂ per channel. Backward recentres x in the buffer that
    becomes grad_x, and x̂ = (x - μ)/σ̂ is never formed: 1/σ̂ is folded into
    per-channel factors. Forward builds the output in place in its one
    buffer (x - μ, then ·γ/σ̂, then +β).

    References
    ----------
    S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network
    Training by Reducing Internal Covariate Shift", ICML 2015, Algorithm 1
    and Sec. 3 (backward); PyTorch ``BatchNorm2d`` docs (running statistics);
    Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, appendix B.1 (global BN).
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, running_mean, running_var, training,
                momentum, eps, comm=None):
        xp = ctx.xp
        if x.ndim not in (2, 4):
            raise ValueError(
                f"batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape {x.shape}"
            )
        c = x.shape[1]
        for name, a in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                        ("running_var", running_var)):
            if a is not None and a.shape != (c,):
                raise ValueError(
                    f"batch_norm: {name} must have shape ({c},) for input shape {x.shape}, got {a.shape}"
                )
        rows = _rows(x)
        ranks = 1 if comm is None or not training else comm.size
        m = rows.shape[0] * ranks
        if training:
            if m < 2:
                raise ValueError(
                    f"batch_norm: training needs more than one value per channel, got input shape {x.shape}"
                )
            if ranks == 1:
                mean = channel_sum(xp, rows) / m
                out = rows - mean
                # Two passes (centre, then square) keep float32 exact where E[x²] - μ² would cancel.
                var = xp.einsum("mc,mc->c", out, out) / m
            else:
                # Sums about the running mean (the same on every rank): E[x²] - μ² stops cancelling once it converges.
                shift = xp.zeros(c, dtype=x.dtype) if running_mean is None else running_mean.astype(x.dtype)
                out = rows - shift
                sums = comm.allreduce_(xp.concatenate([channel_sum(xp, out), xp.einsum("mc,mc->c", out, out)]))
                delta = sums[:c] / m
                var = xp.maximum(sums[c:] / m - delta * delta, 0)
                mean = shift + delta
                out -= delta
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
            out = rows - mean
        inv_std = 1 / xp.sqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std
        out *= scale
        if bias is not None:
            out += bias
        ctx.save_for_backward(rows, mean, inv_std, scale)
        ctx.training, ctx.shape, ctx.comm, ctx.ranks = training, x.shape, comm, ranks
        return _unrows(out, x.shape)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        rows, mean, inv_std, scale = ctx.saved
        needs = ctx.needs_input_grad
        g = _rows(g)
        m = g.shape[0] * ctx.ranks
        grad_bias = channel_sum(xp, g)
        grad_x = grad_weight = None
        if ctx.training or needs[1]:
            centred = rows - mean
            grad_weight = xp.einsum("mc,mc->c", g, centred) * inv_std
        sum_g, sum_g_x_hat = grad_bias, grad_weight
        if ctx.ranks > 1:  # the sums over the global batch; γ and β keep this rank's share (averaged later)
            c = len(grad_bias)
            sums = ctx.comm.allreduce_(xp.concatenate([grad_bias, grad_weight]))
            sum_g, sum_g_x_hat = sums[:c], sums[c:]
        if needs[0] and ctx.training:
            # (γ/σ̂)(g - grad_β/M - x̂ grad_γ/M) with x̂ = centred/σ̂, in place on one buffer.
            grad_x = centred
            grad_x *= inv_std * sum_g_x_hat / m
            grad_x += sum_g / m
            xp.subtract(g, grad_x, out=grad_x)
            grad_x *= scale
        elif needs[0]:
            grad_x = g * scale
        return (
            _unrows(grad_x, ctx.shape) if needs[0] else None,
            grad_weight if needs[1] else None,
            grad_bias if needs[2] else None,
        )


def _buffer(a):
    return a.data if isinstance(a, Tensor) else a


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, comm=None):
    """Batch normalization of an N×C or N×C×H×W batch, as PyTorch's ``batch_norm``.

    Parameters
    ----------
    x : Tensor, shape (N, C) or (N, C, H, W)
    running_mean, running_var : xp.ndarray or Tensor, shape (C,), or None
        Running statistics. In training they are updated IN PLACE (a Tensor's
        ``.data`` is updated; they never get a gradient); in eval they
        normalize x. None in training skips the update.
    weight, bias : Tensor, shape (C,), optional
        The affine γ and β (None: γ = 1, β = 0).
    training : bool
        True: normalize with the batch mean and biased batch variance and
        update the buffers; False: normalize with the buffers.
    momentum : float
        Weight of the new batch statistic in the running average.
    eps : float
        Added to the variance before the square root.
    comm : communicator, optional
        From :func:`minicon.distributed.init`: in training, statistics over
        the batches of all ranks (synchronized BN). None: this batch only.

    Returns
    -------
    Tensor, same shape as x
        For 4-D x, channels-last memory in an NCHW view.

    Raises
    ------
    ValueError
        If x is not 2-D/4-D, a parameter or buffer is not of shape (C,)
        (names both shapes), training sees one value per channel, or eval
        has no running statistics.

    See :class:`BatchNorm` for the formulas and the derivation of the backward.
    """
    options = dict(running_mean=_buffer(running_mean), running_var=_buffer(running_var),
                   training=bool(training), momentum=momentum, eps=eps, comm=comm)
    return BatchNorm.apply(x, weight, bias, **options)
