"""Run by tests/test_distributed.py under ``mpirun -n P``: one case per call, rank 0 prints one JSON line.

``python tests/mpi_worker.py CASE [ARGS]``. Every rank runs the distributed
computation; rank 0 then recomputes it in one process with the whole batch
and prints what the test compares. The deliberately wrong all-gathers live
here, not in minicon: they exist only to show the gradient check catching them.
"""

import json
import sys

import numpy

import minicon
from minicon import Function, Tensor, distributed
from minicon.methods import build_method
from minicon.nn import ConvNet


def _max_rel(a, b, floor=1e-3):
    a, b = (numpy.asarray(minicon.to_host(t), dtype=numpy.float64) for t in (a, b))
    return float(numpy.max(numpy.abs(a - b)) / max(numpy.max(numpy.abs(b)), floor))


def _grads(model):
    return {name: (numpy.zeros(p.shape) if p.grad is None else minicon.to_host(p.grad).copy())
            for name, p in model.named_parameters()}


def _compare(comm, make, batch, step, local_bn=False):
    """Loss and every parameter gradient of ``make()`` on P ranks × N/P against one process × N.

    ``local_bn``: gather, but leave batch norm per rank (the mistake the sync BN test must catch).
    """
    minicon.set_default_dtype("float64")
    model = make()
    if local_bn:
        model.comm = comm
    else:
        distributed.data_parallel(model, comm)
    minicon.manual_seed(1)  # the captions CLIP draws
    loss = model.training_step(distributed.shard(batch, comm.rank, comm.size))
    loss.backward()
    distributed.allreduce_gradients(list(model.parameters()), comm)
    ours, buffers = _grads(model), {k: minicon.to_host(v.data).copy() for k, v in model.named_buffers()}
    if comm.rank != 0:
        return
    single = make()
    minicon.manual_seed(1)
    reference = single.training_step(batch)
    reference.backward()
    theirs = _grads(single)
    diffs = {name: _max_rel(ours[name], theirs[name]) for name in theirs}
    worst = max(diffs, key=diffs.get)
    buffer_diff = max(_max_rel(buffers[k], v.data) for k, v in single.named_buffers()
                      if v.dtype.kind == "f")
    print(json.dumps({"loss": loss.item(), "reference": reference.item(), "parameters": len(diffs),
                      "worst": worst, "grad_diff": diffs[worst], "buffer_diff": buffer_diff,
                      "step": step}))


def simclr_equivalence(comm, bn="sync"):
    rng = numpy.random.default_rng(0)
    views = tuple(rng.standard_normal((8, 3, 8, 8)) for _ in range(2))

    def make():
        minicon.manual_seed(0)
        return build_method("simclr", ConvNet(widths=(4, 8)), hidden_dim=8, projection_dim=4)

    _compare(comm, make, (views, numpy.zeros(8, dtype=numpy.int64)), "simclr", local_bn=bn == "local")


def clip_equivalence(comm):
    rng = numpy.random.default_rng(0)
    images, labels = rng.standard_normal((8, 3, 8, 8)), rng.integers(0, 3, size=8)

    def make():
        minicon.manual_seed(0)
        return build_method("clip", ConvNet(widths=(4, 8)), class_names=["cat", "dog", "ship"])

    _compare(comm, make, (images, labels), "clip")


def siamese_and_supcon_equivalence(comm, method):
    rng = numpy.random.default_rng(0)
    views = tuple(rng.standard_normal((8, 3, 8, 8)) for _ in range(2))

    def make():
        minicon.manual_seed(0)
        return build_method(method, ConvNet(widths=(4, 8)), hidden_dim=8, projection_dim=4)

    _compare(comm, make, (views, rng.integers(0, 3, size=8)), method)


class _ConstantGather(Function):
    """WRONG: the gathered rows as a constant (``comm.allgather`` on ``.data``): no gradient at all."""

    @staticmethod
    def forward(ctx, x, *, comm):
        return comm.allgather(x)

    @staticmethod
    def backward(ctx, grad_out):
        return None


class _UnsummedGather(Function):
    """WRONG: backward takes this rank's slice of its OWN upstream gradient, forgetting the sum over ranks."""

    @staticmethod
    def forward(ctx, x, *, comm):
        ctx.comm, ctx.n = comm, x.shape[0]
        return comm.allgather(x)

    @staticmethod
    def backward(ctx, grad_out):
        r, n = ctx.comm.rank, ctx.n
        return grad_out[r * n:(r + 1) * n].copy()


GATHERS = {"correct": distributed.AllGather, "constant": _ConstantGather, "unsummed": _UnsummedGather}


def gather_gradcheck(comm, variant):
    """∂J/∂x_r against central differences of J = Σ_s L_s, L_s = Σ W_s·tanh(gather(x)) + Σ V_s·x_s²."""
    minicon.set_default_dtype("float64")
    gather = GATHERS[variant]
    rng = numpy.random.default_rng(100 + comm.rank)
    x0 = rng.standard_normal((2, 3))
    w = rng.standard_normal((2 * comm.size, 3))  # a different upstream gradient on every rank
    v = rng.standard_normal((2, 3))

    def loss_of(x_data, graph=False):
        x = Tensor(x_data.copy(), requires_grad=graph)
        loss = (Tensor(w) * gather.apply(x, comm=comm).tanh()).sum() + (Tensor(v) * x * x).sum()
        return x, loss

    x, loss = loss_of(x0, graph=True)
    loss.backward()
    analytic = numpy.zeros_like(x0) if x.grad is None else x.grad
    numeric, h = numpy.zeros_like(x0), 1e-6
    for owner in range(comm.size):  # every rank evaluates J for every perturbed coordinate of every rank
        for index in numpy.ndindex(x0.shape):
            values = []
            for sign in (1, -1):
                xs = x0.copy()
                if comm.rank == owner:
                    xs[index] += sign * h
                total = numpy.array([loss_of(xs)[1].item()])
                values.append(comm.allreduce_(total)[0])
            if comm.rank == owner:
                numeric[index] = (values[0] - values[1]) / (2 * h)
    errors = comm.allgather(numpy.array([_max_rel(analytic, numeric)]))
    if comm.rank == 0:
        print(json.dumps({"variant": variant, "error": float(errors.max())}))


def _tiny_data(n, seed):
    rng = numpy.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=numpy.uint8),
            rng.integers(0, 10, size=n).astype(numpy.int64), [f"class{i}" for i in range(10)])


def _tiny_config(ranks, method="simclr"):
    from minicon.train import TrainConfig

    return TrainConfig(method=method, widths=[8, 16], crop_size=16, batch_size=16, epochs=2,
                       knn_every=0, knn_train=64, knn_test=32, ranks=ranks, queue_size=64)


def train_steps(comm, folder, method):
    """20 float32 steps on P ranks (run folder A) and, on rank 0, in one process (run folder B)."""
    from minicon.train import Trainer

    train, test = _tiny_data(160, 0), _tiny_data(32, 1)
    Trainer(_tiny_config(comm.size, method), f"{folder}/ranks", train_data=train, test_data=test,
            progress=False, comm=comm).fit()
    if comm.rank == 0:
        Trainer(_tiny_config(1, method), f"{folder}/single", train_data=train, test_data=test,
                progress=False).fit()
        losses = [[json.loads(line)["loss"] for line in open(f"{folder}/{name}/steps.jsonl")]
                  for name in ("ranks", "single")]
        print(json.dumps({"ranks": losses[0], "single": losses[1]}))


def cli_train(comm, folder, fail_at="0"):
    """The real ``minicon train --distributed`` on tiny data; with ``fail_at`` = k > 0, rank 1 raises in step k."""
    from minicon import cli
    from minicon.methods import SimCLR
    from minicon.train import trainer

    trainer.load_cifar10 = lambda data_dir, split: _tiny_data(160 if split == "train" else 32, 0)
    original, calls = SimCLR.training_step, []

    def failing_step(self, batch):
        calls.append(1)
        if comm.rank == 1 and len(calls) == int(fail_at):
            raise ValueError(f"injected fault on rank 1 at step {fail_at}")
        return original(self, batch)

    SimCLR.training_step = failing_step
    return cli.main(["train", "--distributed", "--out", folder, "--widths", "8", "16", "--crop-size", "16",
                     "--batch-size", "16", "--epochs", "2"])


if __name__ == "__main__":
    case, args = sys.argv[1], sys.argv[2:]
    communicator = distributed.init()
    with distributed.abort_on_error(communicator):
        code = globals()[case](communicator, *args) or 0
    sys.exit(code)
