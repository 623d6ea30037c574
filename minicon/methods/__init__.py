"""Self-supervised methods: SimCLR, MoCo, CLIP, SimSiam, BYOL (and supervised SupCon),
each a Module with one ``training_step``.

Every method owns its networks and turns one batch into one scalar loss, so
one trainer serves all of them::

    method = build_method("simclr", ConvNet())
    loss = method.training_step(((view1, view2), labels))
    loss.backward(); optimizer.step(); optimizer.zero_grad()

``method.encode(images)`` gives the encoder features that the kNN monitor and
the linear probe read; ``method.num_views`` says how many augmented views a
batch carries (2 for SimCLR and MoCo, 1 for CLIP).
"""

from .base import Method
from .clip import CLIP
from .moco import MoCo
from .momentum import momentum_copy, momentum_update_
from .registry import METHODS, build_method
from .siamese import BYOL, SimSiam
from .simclr import SimCLR
from .supcon import SupConMethod
from .text import CIFAR10_TEMPLATES, TextEncoder, Tokenizer, captions_for

__all__ = [
    "Method", "SimCLR", "MoCo", "CLIP", "SimSiam", "BYOL", "SupConMethod", "build_method", "METHODS", "momentum_copy",
    "momentum_update_", "Tokenizer", "TextEncoder", "captions_for", "CIFAR10_TEMPLATES",
]
