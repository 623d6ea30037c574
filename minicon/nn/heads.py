"""The projection head: the MLP that maps encoder features to the space the contrastive loss sees."""

from __future__ import annotations

from ..autograd import Tensor
from .layers import BatchNorm1d, Linear, ReLU, Sequential
from .module import Module


class ProjectionHead(Module):
    """MLP ``g(h)``: (Linear-BN-ReLU) × (num_layers - 1), then Linear.

    SimCLR showed that computing the loss on ``z = g(h)`` rather than on the
    encoder features ``h`` improves the features ``h`` by over 10 points of
    linear-probe accuracy; MoCo v2 adopted the same 2-layer MLP. Following
    SimCLR's implementation, each hidden Linear is followed by batch norm
    and has no bias (batch norm would cancel it); ``batch_norm=False`` gives
    MoCo v2's plain Linear-ReLU-Linear. The last Linear has a bias and no
    activation.

    Parameters
    ----------
    in_dim : int
        Encoder feature width ``D`` (the encoder's ``feature_dim``).
    hidden_dim : int
        Width of the hidden layers (2048 in SimCLR and MoCo v2 on ImageNet;
        often ``in_dim`` on CIFAR).
    out_dim : int
        Width of the projection ``z`` (128 in both papers).
    num_layers : int
        Number of Linear layers, at least 1 (1: a single Linear ``D → out_dim``).
    batch_norm : bool
        Batch norm after each hidden Linear.

    Shapes: ``N×in_dim`` → ``N×out_dim``. State-dict keys: ``layers.0.weight``, …

    Raises
    ------
    ValueError
        For a non-positive width or ``num_layers < 1``.

    References
    ----------
    Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations" (SimCLR), ICML 2020, §2.1 and §4.2.
    Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive
    Learning" (MoCo v2), arXiv:2003.04297, 2020, §2.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 128, num_layers: int = 2,
                 batch_norm: bool = True):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProjectionHead: {name} must be a positive int, got {value!r}")
        layers, width = [], in_dim
        for _ in range(num_layers - 1):
            layers.append(Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm1d(hidden_dim))
            layers.append(ReLU())
            width = hidden_dim
        layers.append(Linear(width, out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim
        self.layers = Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.layers(h)
