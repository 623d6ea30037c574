"""Split batch norm: batch statistics over ``num_splits`` sub-batches, one device standing in for several.

MoCo shuffles the keys' batch across GPUs before its key encoder ("Shuffling
BN", He et al. 2020, §3.3) so that batch-norm statistics, computed per GPU,
never mix a query with its own key: otherwise the model can find its positive
through the statistics ("cheat") instead of learning good features. On one
device MoCo's CIFAR-10 demo simulates several GPUs by computing batch-norm
statistics over ``num_splits`` sub-batches and shuffles the keys' batch
before the key encoder; these layers are that split batch norm.
"""

from __future__ import annotations

from .. import functional as F
from ..autograd import Tensor
from ..backend import array_module
from ..ops import concatenate
from .layers import BatchNorm1d, BatchNorm2d, _positive_int
from .module import Module


class _SplitBatchNorm:
    """Training-mode statistics per sub-batch; eval mode is plain batch norm.

    Sub-batch ``s`` holds samples ``s, s + S, s + 2S, …`` (S = ``num_splits``),
    the grouping of the MoCo demo's ``input.view(-1, C·S, H, W)``: the batch
    is reshaped to ``(N/S)×(S·C)×H×W`` so that channel ``s·C + c`` of the
    reshaped batch is channel ``c`` of sub-batch ``s``, and one ordinary
    batch norm (``F.batch_norm``, whose backward is already derived) over
    S·C channels normalises every sub-batch with its own mean and variance.
    γ and β are the same for every sub-batch (tiled S times; the gradient of a
    tiled tensor is the sum over its copies). The running statistics move
    toward the MEAN over sub-batches of their batch mean and unbiased
    variance, as the demo averages its S running copies:
    ``running ← (1 - m)·running + m·mean_s(statistic_s)``.

    Parameters
    ----------
    num_features : int
        ``C``.
    num_splits : int
        ``S`` ≥ 1; the batch size must be a multiple of it in training.
    eps, momentum, affine
        As :class:`minicon.nn.BatchNorm1d`.

    Raises
    ------
    ValueError
        For ``num_splits`` < 1; in training forward, for a batch size that is
        not a multiple of ``num_splits`` or a sub-batch with one value per channel.

    References
    ----------
    He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, §3.3 (Shuffling BN); the MoCo CIFAR-10
    demo (github.com/facebookresearch/moco, ``colab/moco_cifar10_demo.ipynb``,
    ``SplitBatchNorm``), adapted from D. Page's cifar10-fast ``GhostBatchNorm``;
    Hoffer, Hubara, Soudry, "Train longer, generalize better", NeurIPS 2017
    (ghost batch norm).
    """

    def __init__(self, num_features: int, num_splits: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.num_splits = _positive_int("num_splits", num_splits, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        splits, c, n = self.num_splits, self.num_features, x.shape[0]
        if x.ndim != self._input_ndim or x.shape[1] != c or n % splits:
            expected = "N×C" if self._input_ndim == 2 else "N×C×H×W"
            raise ValueError(
                f"{type(self).__name__}({c}, num_splits={splits}): expected {expected} input with "
                f"C={c} and N a multiple of {splits}, got shape {tuple(x.shape)}"
            )
        self.num_batches_tracked.data += 1
        momentum = self.momentum
        if momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked.item())
        xp = array_module(x.data)
        # momentum 1 on zeros leaves exactly each sub-batch's mean and unbiased variance here
        split_mean = xp.zeros(splits * c, dtype=self.running_mean.dtype)
        split_var = xp.zeros(splits * c, dtype=self.running_var.dtype)
        weight = concatenate([self.weight] * splits) if self.weight is not None else None
        bias = concatenate([self.bias] * splits) if self.bias is not None else None
        grouped = x.reshape((n // splits, splits * c) + tuple(x.shape[2:]))
        out = F.batch_norm(grouped, split_mean, split_var, weight, bias, True, momentum=1.0,
                           eps=self.eps)
        for running, split in ((self.running_mean, split_mean), (self.running_var, split_var)):
            running.data *= 1 - momentum
            running.data += momentum * split.reshape(splits, c).mean(axis=0)
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_splits={self.num_splits}"


class SplitBatchNorm1d(_SplitBatchNorm, BatchNorm1d):
    """:class:`BatchNorm1d` whose training statistics are per sub-batch (see :class:`_SplitBatchNorm`).

    Input ``N×C`` with N a multiple of ``num_splits``; state-dict keys as BatchNorm1d.
    """


class SplitBatchNorm2d(_SplitBatchNorm, BatchNorm2d):
    """:class:`BatchNorm2d` whose training statistics are per sub-batch (see :class:`_SplitBatchNorm`).

    Input ``N×C×H×W`` with N a multiple of ``num_splits``; state-dict keys as BatchNorm2d.
    """


def _split_copy(bn, num_splits: int):
    """A split layer holding ``bn``'s own Parameter and buffer tensors (shared, not copied)."""
    cls = SplitBatchNorm2d if isinstance(bn, BatchNorm2d) else SplitBatchNorm1d
    split = cls(bn.num_features, num_splits, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
    for name, p in bn.named_parameters(recurse=False):
        setattr(split, name, p)
    for name, b in bn.named_buffers(recurse=False):
        split.register_buffer(name, b)
    return split.train(bn.training)


def convert_split_batchnorm(module: Module, num_splits: int) -> Module:
    """Replace, in place, every ``BatchNorm1d``/``BatchNorm2d`` inside ``module`` by its split version.

    The new layers hold the SAME Parameter and buffer tensors as the ones
    they replace, so an optimizer built earlier still updates them and the
    state-dict keys do not change. Layers that already are split are left alone.

    Parameters
    ----------
    module : Module
        E.g. an encoder (``ConvNet``, ``resnet18()``) or a projection head.
    num_splits : int
        ``S`` ≥ 1 (8 in the MoCo CIFAR-10 demo, for batches of 512).

    Returns
    -------
    Module
        ``module`` itself, or the split layer when ``module`` is a batch norm.

    Raises
    ------
    ValueError
        For ``num_splits`` < 1.
    """
    _positive_int("num_splits", num_splits, "convert_split_batchnorm")
    plain = (BatchNorm1d, BatchNorm2d)
    if type(module) in plain:
        return _split_copy(module, num_splits)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in plain:
                # assign in the registry so a Sequential keeps its order (setattr would append)
                parent._modules[name] = _split_copy(child, num_splits)
    return module
