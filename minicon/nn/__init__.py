"""Modules: ``Module``/``Parameter``, the layers, the image encoders and the projection head.

Built on :mod:`minicon.functional`; the interface follows ``torch.nn``
(NCHW, ``state_dict`` names, ``train()``/``eval()``).
"""

from .module import Module, Parameter
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    kaiming_uniform_bound,
)
from .embedding import Embedding
from .encoders import BasicBlock, ConvNet, ResNet, resnet18
from .heads import ProjectionHead
from .modes import eval_mode
from .split_batchnorm import SplitBatchNorm1d, SplitBatchNorm2d, convert_split_batchnorm

__all__ = [
    "Module", "Parameter", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "ReLU",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity",
    "Sequential", "kaiming_uniform_bound", "ConvNet", "BasicBlock", "ResNet", "resnet18",
    "ProjectionHead", "Embedding", "SplitBatchNorm1d", "SplitBatchNorm2d",
    "convert_split_batchnorm", "eval_mode",
]
