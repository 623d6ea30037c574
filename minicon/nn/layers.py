"""The layers: thin ``Module`` wrappers that own parameters and call ``minicon.functional``.

Each layer's ``forward`` is one call of the functional op of the same name
(see ``minicon.functional`` for the maths, shapes and hand-derived
gradients); the layer adds only the state: weights, running statistics,
the train/eval switch. Weights are drawn on the host with
``minicon.backend.host_rng()`` (seeded by ``minicon.manual_seed``), so a
seed gives the same model on NumPy and CuPy.

References
----------
PyTorch ``torch.nn`` layers, whose constructor arguments, initialisation and
state_dict names these follow (``weight``, ``bias``, ``running_mean``,
``running_var``, ``num_batches_tracked``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from .. import backend
from .. import functional as F
from ..autograd import Tensor
from .module import Module, Parameter


def _positive_int(name: str, value, layer: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _uniform(shape: tuple, bound: float) -> Parameter:
    """A parameter drawn from U(-bound, bound) on the host, in the default dtype."""
    values = backend.host_rng().uniform(-bound, bound, size=shape)
    return Parameter(values.astype(backend.default_dtype()))


def kaiming_uniform_bound(fan_in: int) -> float:
    """PyTorch's default bound for ``Linear``/``Conv2d`` weights and biases: ``1/√fan_in``.

    PyTorch initialises weights with ``kaiming_uniform_(w, a=√5)``: the gain
    for leaky ReLU with slope a is ``√(2/(1+a²)) = √(1/3)``, the standard
    deviation ``gain/√fan_in``, and a uniform distribution with that standard
    deviation has bound ``√3·std = 1/√fan_in``. Biases use U(-1/√fan_in, 1/√fan_in).

    Parameters
    ----------
    fan_in : int
        Inputs per output: ``in_features`` for Linear, ``C·HH·WW`` for Conv2d.

    References
    ----------
    He et al., "Delving Deep into Rectifiers", ICCV 2015, eq. (10) (the gain);
    PyTorch ``nn.Linear.reset_parameters`` / ``nn.Conv2d.reset_parameters``.
    """
    return 1.0 / math.sqrt(fan_in)


class Linear(Module):
    """``y = x Wᵀ + b``.

    Parameters
    ----------
    in_features, out_features : int
        ``D_in`` and ``D_out``.
    bias : bool
        Whether to learn ``b``.

    Attributes
    ----------
    weight : Parameter, ``D_out×D_in``, U(-1/√D_in, 1/√D_in)
    bias : Parameter ``D_out`` or None, U(-1/√D_in, 1/√D_in)

    Shapes: input ``N×D_in`` → output ``N×D_out``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features, "Linear")
        self.out_features = _positive_int("out_features", out_features, "Linear")
        bound = kaiming_uniform_bound(in_features)
        self.weight = _uniform((out_features, in_features), bound)
        self.bias = _uniform((out_features,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D cross-correlation over ``N×C×H×W`` input (im2col + GEMM, see ``F.conv2d``).

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``F``.
    kernel_size : int
        ``HH = WW`` (square kernels).
    stride, padding : int
        Step and zero padding, the same along H and W.
    bias : bool
        Whether to learn a per-filter bias (False before batch norm).

    Attributes
    ----------
    weight : Parameter ``F×C×HH×WW``, U(-1/√(C·HH·WW), 1/√(C·HH·WW))
    bias : Parameter ``F`` or None, same bound.

    Shapes: output ``N×F×H'×W'`` with ``H' = (H + 2·padding - HH) // stride + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels, "Conv2d")
        self.out_channels = _positive_int("out_channels", out_channels, "Conv2d")
        self.kernel_size = _positive_int("kernel_size", kernel_size, "Conv2d")
        self.stride = _positive_int("stride", stride, "Conv2d")
        self.padding = _positive_int("padding", padding, "Conv2d", minimum=0)
        fan_in = in_channels * kernel_size * kernel_size
        bound = kaiming_uniform_bound(fan_in)
        self.weight = _uniform((out_channels, in_channels, kernel_size, kernel_size), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class _BatchNorm(Module):
    """Shared state of ``BatchNorm1d`` and ``BatchNorm2d`` (see ``F.batch_norm``).

    Training normalises with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` (the unbiased variance) with
    ``running = (1 - momentum)·running + momentum·batch``; eval normalises
    with the running statistics. ``momentum=None`` gives the cumulative
    average ``momentum = 1/num_batches_tracked``, as PyTorch.
    """

    _input_ndim = 0
    comm = None  # set by minicon.distributed.sync_batchnorm: statistics over every rank's batch

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _positive_int("num_features", num_features, name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps, self.momentum, self.affine = eps, momentum, affine
        xp, dtype = backend.get_xp(), backend.default_dtype()
        self.weight = Parameter(xp.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype=dtype)) if affine else None
        self.register_buffer("running_mean", Tensor(xp.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_var", Tensor(xp.ones(num_features, dtype=dtype)))
        self.register_counter("num_batches_tracked")

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != self._input_ndim or x.shape[1] != self.num_features:
            expected = "N×C" if self._input_ndim == 2 else "N×C×H×W"
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected {expected} input with "
                f"C={self.num_features}, got shape {tuple(x.shape)}"
            )
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked.item())
        elif momentum is None:
            momentum = 0.0  # eval never updates the running statistics
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, momentum=momentum, eps=self.eps, comm=self.comm)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``N×C`` features, per feature (Ioffe & Szegedy 2015, Alg. 1).

    Parameters
    ----------
    num_features : int
        ``C``.
    eps : float
        Added to the variance before the square root.
    momentum : float or None
        Weight of the new batch in the running statistics (None: cumulative mean).
    affine : bool
        Learn ``weight`` (γ, ones) and ``bias`` (β, zeros).

    Raises
    ------
    ValueError
        In forward, for input that is not ``N×C``.
    """

    _input_ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``N×C×H×W``, per channel over N, H and W (Ioffe & Szegedy 2015).

    Arguments as :class:`BatchNorm1d`; input must be ``N×C×H×W``.
    """

    _input_ndim = 4


class ReLU(Module):
    """``max(x, 0)`` elementwise, any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class _Pool2d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _positive_int("kernel_size", kernel_size, name)
        self.stride = kernel_size if stride is None else _positive_int("stride", stride, name)
        self.padding = _positive_int("padding", padding, name, minimum=0)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over ``kernel_size²`` windows of ``N×C×H×W`` (stride defaults to the kernel size).

    Ties send the whole gradient to the first maximum in row-major order, as PyTorch.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class AvgPool2d(_Pool2d):
    """Mean over ``kernel_size²`` windows of ``N×C×H×W`` (zero padding counts in the mean)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class AdaptiveAvgPool2d(Module):
    """Global average pooling: ``N×C×H×W`` → ``N×C×1×1``.

    Parameters
    ----------
    output_size : int or (int, int)
        Only 1 (or (1, 1)) is supported, the case encoders use.

    Raises
    ------
    ValueError
        For any other output size.
    """

    def __init__(self, output_size=1):
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError(f"AdaptiveAvgPool2d: only output_size=1 is supported, got {output_size!r}")
        self.output_size = 1

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, 1)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Merge axes ``start_dim`` … last into one: ``N×C×H×W`` → ``N×(C·H·W)``."""

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, start_dim=self.start_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; identity in eval.

    References
    ----------
    Srivastava et al., "Dropout", JMLR 2014 (inverted scaling as in PyTorch).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed classifier)."""

    def forward(self, x):
        return x


class Sequential(Module):
    """Modules applied in order; indexable (``seq[0]``, ``seq[1:]``), iterable, ``len``.

    Parameters
    ----------
    *modules : Module, or one OrderedDict of name → Module
        Unnamed modules are registered as ``"0"``, ``"1"``, … (the
        state_dict keys become ``"0.weight"``, as in PyTorch).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: {name!r} is a {type(module).__name__}, not a Module")
            setattr(self, name, module)

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end (named by its position); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        try:
            return items[index][1]
        except IndexError:
            raise IndexError(f"Sequential index {index} out of range for length {len(items)}") from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
