"""Contrastive losses, each one fused ``Function`` with a hand-derived backward.

Every loss L2-normalizes its embeddings itself, checks its arguments (a
``ValueError`` naming the argument), is stable in float32 down to τ = 0.01
for embeddings of any norm, and returns a scalar in nats. The derivation of
each gradient is written out in its class docstring; ``tests/`` proves each
equal to the same loss composed from primitive ops and to finite differences.

- :func:`normalize`, :func:`cosine_similarity`: zero vectors give 0, not NaN.
- :func:`cross_entropy`: softmax cross-entropy with integer targets.
- :func:`nt_xent`: SimCLR (Chen et al. 2020).
- :func:`info_nce` with :class:`MemoryQueue`: MoCo (He et al. 2020).
- :func:`clip_loss` with :func:`init_logit_scale`: CLIP (Radford et al. 2021).
- :func:`supcon`: supervised contrastive, L_out (Khosla et al. 2020).
"""

from .clip import MAX_LOGIT_SCALE, CLIPLoss, clip_loss, init_logit_scale
from .cross_entropy import CrossEntropy, cross_entropy
from .info_nce import InfoNCE, info_nce
from .memory_queue import MemoryQueue
from .normalize import Normalize, cosine_similarity, normalize
from .nt_xent import NTXent, nt_xent
from .supcon import SupCon, supcon

__all__ = [
    "normalize", "cosine_similarity", "cross_entropy", "nt_xent", "info_nce", "MemoryQueue",
    "clip_loss", "init_logit_scale", "MAX_LOGIT_SCALE", "supcon", "Normalize", "CrossEntropy", "NTXent",
    "InfoNCE", "CLIPLoss", "SupCon",
]
