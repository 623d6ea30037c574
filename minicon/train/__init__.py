"""Training: checkpoints (and, as it lands, the trainer shared by every method)."""

from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["load_checkpoint", "save_checkpoint"]
