"""Training: DeepSpeed (ZeRO) over torchrun ranks. `train()` is the entry point."""
from components.training.config import TrainConfig
from components.training.launch import TrainingError, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train"]
