"""EmotionOmniConfig: one typed, JSON-serialisable description of the whole model.

The exported `config.json` is exactly `EmotionOmniConfig.to_dict()`, so a weights file plus this config
rebuild the model with no other source of truth. Defaults are the tiny CPU scale the local pipeline trains;
the paper's full scale is noted beside each field.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS


@dataclass
class EmotionOmniConfig:
    # --- audio front end (Whisper log-mel) ---
    n_mels: int = 80                 # paper: 128 (Whisper-large-v3); 80 is Whisper-base/small's front end
    window_seconds: float = 6.0      # paper: 30 s; our synthesized user turns stay under 6 s
    # --- semantic speech encoder: kwargs for transformers.WhisperConfig (encoder side only is used) ---
    speech_encoder: dict[str, Any] = field(default_factory=lambda: {
        "d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 128,
    })                               # paper: Whisper-large-v3 encoder, 1280-d, 32 layers, frozen
    speech_encoder_path: str | None = None  # local dir of a pretrained Whisper checkpoint; None = random init
    freeze_speech_encoder: bool = False     # paper freezes the pretrained encoder; a random one must learn
    # --- emotion encoder (stand-in for emotion2vec, which cannot be downloaded here) ---
    emotion_encoder_dim: int = 64    # paper: 768 (emotion2vec base)
    emotion_encoder_layers: int = 1
    # --- frame-stacking adapters: 50 Hz -> 10 Hz ---
    stack_factor: int = 5            # paper: k = 5
    adapter_hidden: int = 256        # paper: 2048
    # --- LLM: kwargs for transformers.Qwen2Config ---
    llm: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
        "tie_word_embeddings": True,
    })                               # paper: Qwen2.5-7B-Instruct (hidden 3584) with LoRA r=8
    llm_path: str | None = None      # local dir of a pretrained Qwen2 checkpoint; None = random init
    freeze_llm: bool = False         # True trains only adapters + heads (paper trains LoRA on a frozen LLM)
    vocab_size: int = 0              # set from the tokenizer; 0 means "not built yet"
    # --- chat template token ids, filled from the tokenizer (see tokenizer.py) ---
    prompt_prefix_ids: list[int] = field(default_factory=list)   # "<|im_start|>user\n"
    prompt_suffix_ids: list[int] = field(default_factory=list)   # "<|im_end|>\n<|im_start|>assistant\n"
    eos_token_id: int = -1
    pad_token_id: int = -1
    max_response_tokens: int = 64    # generation cap; synthesized replies are 10-30 words
    # --- emotion prediction ---
    emotion_dim: int = 16            # paper: emotion2vec's 768-d space; here a fixed codebook space
    head_tokens: int = 5             # paper: mean over the first 5 response tokens' hidden states
    head_dropout: float = 0.1
    user_emotions: list[str] = field(default_factory=lambda: list(USER_EMOTIONS))
    response_emotions: list[str] = field(default_factory=lambda: list(RESPONSE_EMOTIONS))
    # --- loss weights: L = text_ce + emotion_weight * L_emo + user_emotion_weight * CE(user) ---
    emotion_weight: float = 1.0
    user_emotion_weight: float = 1.0

    @property
    def llm_hidden(self) -> int:
        return int(self.llm["hidden_size"])

    @property
    def mel_frames(self) -> int:
        """Mel frames in one window (Whisper's hop is 10 ms, so 100 per second)."""
        return int(round(self.window_seconds * 100))

    @property
    def adapter_frames(self) -> int:
        """10 Hz frames per window after the encoder's stride 2 and the adapter's stack factor."""
        return self.mel_frames // 2 // self.stack_factor

    def validate(self) -> None:
        """Raise ValueError naming the field and the fix when the config cannot build a model."""
        if self.mel_frames % (2 * self.stack_factor):
            raise ValueError(
                f"window_seconds={self.window_seconds} gives {self.mel_frames} mel frames, not divisible by "
                f"2*stack_factor={2 * self.stack_factor}; pick a window that is a multiple of "
                f"{2 * self.stack_factor / 100:g} s")
        if self.emotion_dim < len(self.response_emotions):
            raise ValueError(
                f"emotion_dim={self.emotion_dim} is smaller than the {len(self.response_emotions)} response "
                "emotions; the codebook needs one orthogonal direction each: raise emotion_dim")
        if self.vocab_size <= 0 or self.eos_token_id < 0 or self.pad_token_id < 0:
            raise ValueError("vocab_size/eos_token_id/pad_token_id are unset: build the config with "
                             "components.model.tokenizer.apply_tokenizer(config, tokenizer)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EmotionOmniConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EmotionOmniConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "EmotionOmniConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
