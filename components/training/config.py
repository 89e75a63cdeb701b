"""TrainConfig: everything a training run needs besides the data and the model architecture.

Two stages, as the paper: stage 1 (`TrainConfig`) trains the thinker on reply text and emotion; stage 2
(`SpeechTrainConfig`) freezes it and trains the talker and the token2wav's unit -> mel model on the reference
replies' speech units. Each stage is its own run directory, exported model and MLflow entry.
"""
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
LOSS_CURVE_FILE = "loss_curve.png"  # drawn from LOG_FILE when the run ends
SUMMARY_FILE = "train_summary.json"
TOKENIZER_FILE = "tokenizer.json"
INIT_DIR = "init"                    # stage 2: the stage-1 model and the speech units, copied into the run


@dataclass
class TrainConfig:
    stage: int = 1
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
    # Pretrained parts, loaded from local checkpoint directories (never the hub); their architectures replace
    # the model config's audio/text configs. The paper freezes both (and trains LoRA on the LM).
    speech_encoder_path: str = ""
    llm_path: str = ""
    freeze_speech_encoder: bool = False   # a random encoder must learn; freeze a pretrained one
    freeze_llm: bool = False              # True trains only adapters + heads on a pretrained LM
    model: EmotionOmniConfig = field(default_factory=EmotionOmniConfig)

    def validate(self) -> None:
        for name in ("epochs", "micro_batch_size", "grad_accum_steps", "nproc"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"TrainConfig.zero_stage={self.zero_stage}: DeepSpeed ZeRO stages are 0-3")
        if not (self.lr_llm > 0 and self.lr_modules > 0):
            raise ValueError("learning rates must be > 0")
        if self.stage not in (1, 2):
            raise ValueError(f"TrainConfig.stage={self.stage}: stage 1 trains the thinker, stage 2 the talker")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A TrainConfig, or a SpeechTrainConfig when `data` says stage 2 (or is read by that class)."""
        data = dict(data)
        target = SpeechTrainConfig if data.get("stage", 2 if cls is SpeechTrainConfig else 1) == 2 else TrainConfig
        model = EmotionOmniConfig.from_dict(data.pop("model", {}))
        known = {f.name for f in dataclasses.fields(target)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {target.__name__} keys {unknown}; known keys: {sorted(known)}")
        return target(model=model, **data)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


@dataclass
class SpeechTrainConfig(TrainConfig):
    """Stage 2: the stage-1 model's thinker, frozen, speaks through a talker trained on speech units.

    `model.talker_config` / `model.token2wav_config` give the talker's and unit -> mel model's sizes; the
    thinker's config comes from the stage-1 model and the unit vocabulary from the speech-units step.
    """

    stage: int = 2
    epochs: int = 16                 # measured on the demo data: speech-emotion agreement 0.62 at 16, 0.58 at 24
    lr_modules: float = 2e-3         # talker, fusion, unit -> mel (paper: 2e-4 at 7B scale)
    checkpoint_every_epochs: int = 8


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
