"""stc.train: digits data, the training loop and safetensors checkpoints."""

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DigitsSplit, load_digits_split
from .loop import TrainConfig, TrainResult, evaluate, train_model

__all__ = ["DigitsSplit", "TrainConfig", "TrainResult", "evaluate", "load_checkpoint",
           "load_digits_split", "save_checkpoint", "train_model"]
