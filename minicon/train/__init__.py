"""Training: the trainer shared by every method, its configuration, checkpoints and evaluation."""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .trainer import CollapseWarning, Trainer, TrainingError

__all__ = ["Trainer", "TrainingError", "CollapseWarning", "TrainConfig", "ConfigError", "load_checkpoint", "save_checkpoint"]
