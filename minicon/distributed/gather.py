"""The autograd side of data parallelism: ``all_gather`` with its gradient, and gradient averaging."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import array_module


class AllGather(Function):
    """``Y = [x_0; x_1; …; x_{P-1}]``: every rank's rows, stacked in rank order, on every rank.

    Definition. Rank r holds x_r (n×D) and receives the same Y (P·n×D); rows
    r·n … r·n + n - 1 of Y are x_r.

    Gradient. Each rank r goes on to its own scalar L_r(Y) and the job
    minimizes J = Σ_s L_s (the gradient averaging that follows divides by P).
    x_r reaches J through the copy of Y on EVERY rank s, so by the chain rule
    ``∂J/∂x_r = Σ_s (∂L_s/∂Y)[r·n : r·n + n]``: sum the upstream gradients
    of all ranks, then take rank r's slice. That is one reduce-scatter,
    the collective dual to all-gather. Two mistakes are common, and the
    tests show that both fail a finite-difference check:

    * a plain gather (the other ranks' rows as constants) keeps only the
      term s = r, so x_r never learns from being a negative elsewhere;
    * a backward that slices without summing (or averages) scales it wrong,
      by 1/P when every rank computes the same loss.

    Shapes: x (n, ...) with the same shape on every rank; Y (P·n, ...).
    Saves nothing but the communicator: the backward needs no input.

    References
    ----------
    Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020, §2.2 and appendix B.1
    (negatives and BN statistics aggregated over all devices); the MPI 4.0
    standard, §6.6 (Allgather) and §6.10 (Reduce_scatter_block).
    """

    @staticmethod
    def forward(ctx, x, *, comm):
        ctx.comm = comm
        return comm.allgather(x)

    @staticmethod
    def backward(ctx, grad_out):
        return ctx.comm.reduce_scatter(grad_out)


def all_gather(x, comm) -> Tensor:
    """Every rank's ``x`` stacked in rank order, with the gradient of :class:`AllGather`.

    Parameters
    ----------
    x : Tensor, shape (n, ...)
        The same shape on every rank.
    comm : communicator or None
        From :func:`minicon.distributed.init`; None (one process) returns ``x``.

    Returns
    -------
    Tensor, shape (P·n, ...)
    """
    if comm is None or comm.size == 1:
        return x
    return AllGather.apply(x, comm=comm)


def allreduce_gradients(parameters, comm) -> None:
    """Average every parameter's ``.grad`` over the ranks, with ONE Allreduce of one flat buffer.

    One call per parameter would pay the latency of a collective (tens of
    microseconds over shared memory, more over a network) dozens of times
    per step; one flat buffer pays it once. After the call every rank holds
    ``(1/P) Σ_r grad_r``, the gradient of the mean of the ranks' losses, so
    an optimizer stepped on every rank keeps the replicas equal (Goyal et
    al. 2017, §3: the gradient of the whole minibatch as the average of
    per-worker gradients).

    Parameters
    ----------
    parameters : iterable of Tensor
        The same parameters in the same order on every rank; those whose
        ``.grad`` is None on this rank count as zero (the buffer must have
        the same layout everywhere), and get the averaged gradient.
    comm : communicator or None
        None (one process) leaves the gradients as they are.

    References
    ----------
    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1
    Hour", 2017, §3 and §4 (gradient aggregation).
    """
    if comm is None or comm.size == 1:
        return
    params = list(parameters)
    if not params:
        return
    xp = array_module(params[0].data)
    dtype = params[0].dtype
    sizes = [p.size for p in params]
    flat = xp.empty(sum(sizes), dtype=dtype)
    start = 0
    for p, size in zip(params, sizes):
        flat[start:start + size] = 0 if p.grad is None else p.grad.reshape(-1)
        start += size
    comm.allreduce_(flat)
    flat *= 1.0 / comm.size
    start = 0
    for p, size in zip(params, sizes):
        p.grad = flat[start:start + size].reshape(p.shape).astype(p.dtype, copy=False)
        start += size


def shard(batch, rank: int, size: int):
    """Rank ``rank``'s contiguous 1/size of every array in ``batch`` (nested tuples and lists kept).

    Rank r takes rows r·n … r·n + n - 1 with n = N/size, the rows
    :class:`AllGather` puts back at the same place, so the gathered batch is
    the global batch in its own order.

    Raises
    ------
    ValueError
        If an array's length N is not a multiple of ``size``.
    """
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(item, rank, size) for item in batch)
    n, extra = divmod(len(batch), size)
    if extra:
        raise ValueError(f"a batch of {len(batch)} cannot be split evenly over {size} ranks")
    return batch[rank * n:(rank + 1) * n]
