"""Data-parallel training over several processes: MPI for NumPy, NCCL for CuPy.

P processes ("ranks", started by ``mpirun -n P``) each hold a full replica
of the model and a disjoint 1/P of every global batch. Three things make P
ranks compute exactly what one process computes with the whole batch:

1. :func:`all_gather` stacks every rank's embeddings, so each loss sees the
   negatives of the GLOBAL batch, and its backward (a reduce-scatter)
   returns to each rank the gradient its rows received on every rank;
2. synchronized batch norm (:func:`sync_batchnorm`): mean and variance over
   the global batch, one Allreduce forward and one backward per layer;
3. :func:`allreduce_gradients` averages the parameter gradients in one
   flat Allreduce, so the optimizer steps keep the replicas identical.

Importing this module imports neither mpi4py nor CuPy; :func:`init` does.

References
----------
Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020, §2.2 and appendix B.1
(global BN, negatives from all devices); He, Fan, Wu, Xie, Girshick,
"Momentum Contrast for Unsupervised Visual Representation Learning", CVPR
2020, §3.3 (shuffling BN); Goyal et al., "Accurate, Large Minibatch SGD",
2017 (gradient averaging).
"""

from __future__ import annotations

from ..nn import BatchNorm1d, BatchNorm2d, Module
from .comm import INSTALL_HINT, MPICommunicator, NCCLCommunicator, abort_on_error, init, mpirun_command
from .gather import AllGather, all_gather, allreduce_gradients, shard

__all__ = ["init", "abort_on_error", "MPICommunicator", "NCCLCommunicator", "mpirun_command", "INSTALL_HINT",
           "AllGather", "all_gather", "allreduce_gradients", "shard", "sync_batchnorm", "data_parallel"]


def sync_batchnorm(module: Module, comm) -> Module:
    """Make every plain ``BatchNorm1d``/``BatchNorm2d`` in ``module`` compute its statistics over all ranks.

    Sets each layer's ``comm``; in training its forward then Allreduces the
    per-channel sums and sums of squares (see
    :class:`minicon.functional.normalization.BatchNorm`). Parameters,
    buffers and state-dict keys are unchanged. Split batch norms (MoCo) are
    left alone: their point is statistics over PART of the batch.

    Returns
    -------
    Module
        ``module`` itself.
    """
    for layer in module.modules():
        if type(layer) in (BatchNorm1d, BatchNorm2d):
            layer.comm = comm
    return module


def data_parallel(method: Module, comm) -> Module:
    """Prepare a contrastive method for ``comm.size`` ranks, in place; returns it.

    Sets ``method.comm`` (its ``training_step`` then gathers embeddings, or
    MoCo's keys, across ranks) and, for every method but MoCo, synchronizes
    its batch norms. MoCo keeps per-rank (split) batch norm and shuffles its
    key batch across ranks instead (He et al. 2020, §3.3). With P = 1 the
    method is left as it is.
    """
    if comm is None or comm.size == 1:
        return method
    method.comm = comm
    if not getattr(method, "shuffles_bn", False):
        sync_batchnorm(method, comm)
    return method
