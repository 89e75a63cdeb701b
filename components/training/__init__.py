"""Training: DeepSpeed (ZeRO) over torchrun ranks. `train()` is the entry point.

The names below load on first use (PEP 562): importing `components.training.config` for a file name, as the registry
steps do, must not load the launcher, the model and torch.distributed with it (seconds in every such step's pod).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "components.training.config",
    "TrainResult": "components.training.launch",
    "TrainingError": "components.training.launch",
    "train": "components.training.launch",
}

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'components.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
