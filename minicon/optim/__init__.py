"""Optimizers and learning-rate schedules, written on raw ``xp`` arrays.

``SGD``, ``Adam`` and ``AdamW`` match ``torch.optim`` step for step; ``LARS``
follows SimCLR. All keep PyTorch's parameter groups and ``state_dict`` layout
(with host NumPy arrays), and by default give biases and normalization
parameters (every tensor with fewer than 2 dimensions) no weight decay.
"""

from .adam import Adam, AdamW
from .lars import LARS
from .optimizer import Optimizer
from .schedules import WarmupCosine, linear_scaling, sqrt_scaling, warmup_cosine
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "LARS", "WarmupCosine", "warmup_cosine",
    "linear_scaling", "sqrt_scaling",
]
