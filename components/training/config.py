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

import torch

from components.errors import ConfigError, InputNotFoundError, check_keys
from components.model.configuration import EmotionOmniConfig

# A run directory's files are named in contracts.py (TRAIN_CONFIG_FILE, TRAIN_LOG_FILE, TRAIN_SUMMARY_FILE, ...).
INIT_DIR = "init"  # stage 2: the stage-1 model and the speech units, copied into the run
INIT_MODEL = "model"  # RUN/init/model: the stage-1 model the thinker comes from
INIT_UNITS = "units"  # RUN/init/units: the speech-units step's output

# Qwen2's linear layers: the paper's LoRA targets (lm_head is left alone, as peft's "all-linear" does).
LORA_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    stage: int = 1
    epochs: int = 15  # paper: 1 epoch per stage on 200k dialogues; the demo's 384 need ~15
    micro_batch_size: int = 8  # per process
    grad_accum_steps: int = 1
    lr_llm: float = 1e-3  # paper: 5e-5 for a pretrained LLM; a random tiny one needs far more
    lr_modules: float = 2e-3  # encoders, adapters, heads (paper: 2e-4)
    weight_decay: float = 0.01  # paper
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    zero_stage: int = 2  # ZeRO-2 matched DDP speed on CPU; ZeRO-3 ran 0.3-0.7x here
    nproc: int = 2  # processes per node (torchrun --nproc_per_node)
    seed: int = 0
    tokenizer_vocab_size: int = 1024
    max_steps: int = 0  # > 0 stops early (smoke tests); 0 = run all epochs
    checkpoint_every_epochs: int = 5  # DeepSpeed (ZeRO) checkpoints for resuming; the last epoch always saves
    checkpoint_every_steps: int = 0  # > 0 also checkpoints every N optimizer steps (long epochs on big data)
    keep_checkpoints: int = 2  # complete checkpoints kept (locally and in checkpoint_uri)
    # Where checkpoints are mirrored so a restarted pod finds them: a directory (the shared PVC) or
    # s3://[host:port/]bucket/prefix. "" keeps them only in RUN/checkpoints.
    checkpoint_uri: str = ""
    log_every_steps: int = 5
    deepspeed_overrides: dict = field(default_factory=dict)  # merged into the DeepSpeed config (bucket sizes, ...)
    # Pretrained parts, loaded from local checkpoint directories (never the hub); their architectures replace
    # the model config's audio/text configs. The paper freezes both (and trains LoRA on the LM).
    speech_encoder_path: str = ""
    llm_path: str = ""
    # An exported Emotion Omni model whose emotion encoder to start from (our stand-in for emotion2vec, which
    # cannot be fetched here); the paper freezes its emotion encoder.
    emotion_encoder_path: str = ""
    freeze_speech_encoder: bool = False  # a random encoder must learn; freeze a pretrained one
    freeze_emotion_encoder: bool = False
    freeze_llm: bool = False  # True trains only adapters + heads on a pretrained LM
    # LoRA on the (frozen, pretrained) LM with peft; 0 trains the LM fully. Paper: r=8, alpha 16, dropout 0.05, on
    # every linear layer. Merged into the LM on export: serving loads a plain model.
    lora_r: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_ALL_LINEAR))
    # GPU readiness: bf16 (DeepSpeed's bf16 mode; fp32 master weights) and recomputing the LM's activations.
    precision: str = "fp32"  # "fp32" | "bf16"
    gradient_checkpointing: bool = False
    metrics_port: int = 0  # > 0: rank 0 serves Prometheus metrics there while training (metrics.py)
    model: EmotionOmniConfig = field(default_factory=EmotionOmniConfig)

    def validate(self) -> None:
        for name in ("epochs", "micro_batch_size", "grad_accum_steps", "nproc"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"TrainConfig.zero_stage={self.zero_stage}: DeepSpeed ZeRO stages are 0-3")
        if not (self.lr_llm > 0 and self.lr_modules > 0):
            raise ConfigError(f"TrainConfig.lr_llm={self.lr_llm} and lr_modules={self.lr_modules} must both be > 0")
        if self.stage not in (1, 2):
            raise ConfigError(f"TrainConfig.stage={self.stage}: stage 1 trains the thinker, stage 2 the talker")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision={self.precision!r}: use one of {PRECISIONS}")
        if self.lora_r < 0 or (self.lora_r and (not self.lora_target_modules or not 0 <= self.lora_dropout < 1)):
            raise ConfigError(
                "TrainConfig.lora_r must be >= 0; with LoRA, lora_target_modules must name layers and "
                "lora_dropout be in [0, 1)"
            )
        if self.lora_r and self.stage == 2:
            raise ConfigError("TrainConfig.lora_r is for stage 1 (the LM); stage 2 freezes the thinker: set lora_r=0")
        if self.keep_checkpoints < 1 or self.checkpoint_every_steps < 0 or self.checkpoint_every_epochs < 1:
            raise ConfigError(
                "TrainConfig.keep_checkpoints and checkpoint_every_epochs must be >= 1, checkpoint_every_steps >= 0"
            )

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """What inputs are cast to: DeepSpeed's bf16 mode casts the model's weights, not the batch."""
        return torch.bfloat16 if self.precision == "bf16" else None

    def lora_settings(self) -> dict[str, Any]:
        """peft.LoraConfig's arguments."""
        return {
            "r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": list(self.lora_target_modules),
        }

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
        check_keys(target, data)
        return target(model=model, **data)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise InputNotFoundError(f"no TrainConfig JSON at {path}: pass the file --config should read")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path} is not JSON ({error.msg}, line {error.lineno}): fix it or drop --config"
            ) from None
        return cls.from_dict(data)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


@dataclass
class SpeechTrainConfig(TrainConfig):
    """Stage 2: the stage-1 model's thinker, frozen, speaks through a talker trained on speech units.

    `model.talker_config` / `model.token2wav_config` give the talker's and unit -> mel model's sizes; the
    thinker's config comes from the stage-1 model and the unit vocabulary from the speech-units step.
    """

    stage: int = 2
    # On 240 training replies speech-emotion agreement was 0.62 at 16 epochs, 0.58 at 24; the demo now has 384,
    # and 8 epochs (192 steps) keep `make demo` under 10 minutes.
    epochs: int = 8
    lr_modules: float = 2e-3  # talker, fusion, unit -> mel (paper: 2e-4 at 7B scale)
    checkpoint_every_epochs: int = 4


def deepspeed_config(config: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config dict. No "optimizer" block: on CPU that JIT-compiles extra ops; we pass AdamW.
    `config.deepspeed_overrides` is merged in last, key by key (nested dicts too)."""
    return _merge(_deepspeed_base(config), config.deepspeed_overrides)


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def _deepspeed_base(config: TrainConfig) -> dict[str, Any]:
    return {
        "bf16": {"enabled": config.precision == "bf16"},
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.grad_accum_steps,
        "gradient_clipping": config.grad_clip,
        "zero_optimization": {"stage": config.zero_stage, "overlap_comm": False, "contiguous_gradients": True},
        "zero_allow_untested_optimizer": True,  # torch AdamW is fine; DeepSpeed only vouches for its own
        "steps_per_print": 10**9,  # we log ourselves
        "wall_clock_breakdown": False,
    }


def init_paths(run_dir: Path) -> tuple[Path, Path]:
    """Where a stage-2 run keeps its stage-1 model and its speech units (RUN/init also roots a CosyVoice2
    checkpoint's relative path)."""
    return Path(run_dir) / INIT_DIR / INIT_MODEL, Path(run_dir) / INIT_DIR / INIT_UNITS
