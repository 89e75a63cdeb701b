"""EmotionOmniToken2WavConfig: how speech units become audio (the token2wav part of EmotionOmniConfig)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from components.errors import ConfigError, check_keys
from components.speech.mel import MelConfig
from components.synthesis.taxonomy import ASSISTANT_SPEAKER

TOKEN2WAV_BACKENDS = ("local", "cosyvoice2")


@dataclass
class EmotionOmniToken2WavConfig:
    """Speech units -> audio. "local": k-means units over log-mel frames, a unit -> mel model conditioned on the
    emotion vector and the speaker, Griffin-Lim; "cosyvoice2": flow + HiFT from a local checkpoint directory."""

    backend: str = "local"
    mel: MelConfig = field(default_factory=MelConfig)
    num_units: int = 512  # k-means K; measured centroid-only STOI: 0.68 (K=256) .. 0.75 (K=1024)
    frames_per_unit: int = 2  # 25 units/s over the 50 Hz mel, as CosyVoice2 (2 mel frames per token)
    hidden_size: int = 128
    unit_layers: int = 2  # kernel-3 conv blocks at the unit rate: 1 unit of look-ahead each ...
    frame_layers: int = 2  # ... and at the frame rate, 1 frame each: 3 units of look-ahead in all,
    #                                   the reference's streaming look-ahead, so streamed chunks are final
    emotion_dim: int = 16
    speakers: list[str] = field(default_factory=lambda: [ASSISTANT_SPEAKER])  # the voices it can speak in
    griffin_lim_iters: int = 16  # fast Griffin-Lim (momentum 0.99): STOI 0.929 at 16 vs 0.922 plain at 32
    cosyvoice2_path: str = ""  # backend "cosyvoice2": the local checkpoint directory
    cosyvoice2_prompt_wav: str = ""  # backend "cosyvoice2": a voice to imitate (zero-shot prompt); "" = none

    @property
    def unit_rate(self) -> float:
        return self.mel.frames_per_second / self.frames_per_unit

    def validate(self) -> None:
        if self.backend not in TOKEN2WAV_BACKENDS:
            raise ConfigError(f"token2wav backend={self.backend!r}: use one of {list(TOKEN2WAV_BACKENDS)}")
        if self.backend == "cosyvoice2" and not self.cosyvoice2_path:
            raise ConfigError(
                "token2wav backend 'cosyvoice2' needs cosyvoice2_path: the local directory holding "
                "cosyvoice.yaml, flow.pt, hift.pt, speech_tokenizer_v2.onnx and campplus.onnx"
            )
        if not self.speakers:
            raise ConfigError("token2wav speakers is empty: name at least the assistant's voice")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmotionOmniToken2WavConfig:
        data = dict(data)
        check_keys(cls, data)
        return cls(mel=MelConfig(**data.pop("mel", {})), **data)
