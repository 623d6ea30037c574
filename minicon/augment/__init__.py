"""Batched image augmentations on NumPy or CuPy arrays: the source of positive pairs.

``minicon.augment.functional`` holds the deterministic operations (one call
per batch, per-image parameters as arrays); the classes here draw random
parameters per image and call them; :func:`simclr_cifar` and
:func:`moco_v2_cifar` are the published recipes. All work on float NCHW
batches in [0, 1]; ``ToFloat`` converts uint8.
"""

from . import functional
from .presets import CIFAR10_MEAN, CIFAR10_STD, moco_v2_cifar, simclr_cifar
from .transforms import (
    ColorJitter,
    Compose,
    GaussianBlur,
    Normalize,
    RandomApply,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ToFloat,
    Transform,
    TwoViews,
)

__all__ = [
    "functional", "Transform", "ToFloat", "Compose", "RandomApply", "RandomResizedCrop",
    "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "GaussianBlur", "Normalize",
    "TwoViews", "simclr_cifar", "moco_v2_cifar", "CIFAR10_MEAN", "CIFAR10_STD",
]
