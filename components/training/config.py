"""TrainConfig: everything a training run needs besides the data and the model architecture."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.model.configuration import EmotionOmniConfig


# Files in a run directory, shared by the launcher (parent) and the workers (ranks).
CONFIG_FILE = "train_config.json"
LOG_FILE = "train_log.jsonl"        # per-step losses, JSON lines, written by rank 0
SUMMARY_FILE = "train_summary.json"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class TrainConfig:
    epochs: int = 30                 # paper: 1 epoch per stage on 200k dialogues; 240 tiny dialogues need ~30
    micro_batch_size: int = 8        # per process
    grad_accum_steps: int = 1
    lr_llm: float = 1e-3             # paper: 5e-5 for a pretrained LLM; a random tiny one needs far more
    lr_modules: float = 2e-3         # encoders, adapters, heads (paper: 2e-4)
    weight_decay: float = 0.01       # paper
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    zero_stage: int = 2              # ZeRO-2 matched DDP speed on CPU; ZeRO-3 ran 0.3-0.7x here
    nproc: int = 2                   # processes per node (torchrun --nproc_per_node)
    seed: int = 0
    tokenizer_vocab_size: int = 1024
    max_steps: int = 0               # > 0 stops early (smoke tests); 0 = run all epochs
    checkpoint_every_epochs: int = 10  # DeepSpeed (ZeRO) checkpoints for resuming; the last epoch always saves
    log_every_steps: int = 5
    model: EmotionOmniConfig = field(default_factory=EmotionOmniConfig)

    def validate(self) -> None:
        for name in ("epochs", "micro_batch_size", "grad_accum_steps", "nproc"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"TrainConfig.zero_stage={self.zero_stage}: DeepSpeed ZeRO stages are 0-3")
        if not (self.lr_llm > 0 and self.lr_modules > 0):
            raise ValueError("learning rates must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        model = EmotionOmniConfig.from_dict(data.pop("model", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(model=model, **data)

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def deepspeed_config(config: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config dict. No "optimizer" block: on CPU that JIT-compiles extra ops; we pass AdamW."""
    return {
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.grad_accum_steps,
        "gradient_clipping": config.grad_clip,
        "zero_optimization": {"stage": config.zero_stage, "overlap_comm": False,
                              "contiguous_gradients": True},
        "zero_allow_untested_optimizer": True,  # torch AdamW is fine; DeepSpeed only vouches for its own
        "steps_per_print": 10**9,               # we log ourselves
        "wall_clock_breakdown": False,
    }
