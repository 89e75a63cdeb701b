"""Emotion Omni's configuration: one typed, JSON-serialisable description of the whole model.

Shaped like transformers' Qwen2.5-Omni: a thinker (hears the user, writes the reply, predicts its emotion),
a talker (the paper's emotion-conditioned speech generator, stage 2) and a token2wav (speech units -> audio),
each with its own config, under one `EmotionOmniConfig`. The exported `config.json` is exactly
`EmotionOmniConfig.to_dict()`, so a weights file plus this config rebuild the model with no other source.
Configs are plain data: building a model never writes back into them.

Defaults are the tiny CPU scale the local pipeline trains in minutes; the paper's scale is noted per field.
A stage-1 model has no talker and no token2wav (`talker_config is None`): it answers in text only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Qwen2Config, WhisperConfig

from components.audio.features import ENCODER_STRIDE, mel_frames
from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS
from components.errors import ConfigError, check_keys
from components.speech.config import EmotionOmniToken2WavConfig

# Tiny defaults for the two pretrained-architecture parts. A JSON override of a few keys (e.g. hidden_size) is
# laid over these, never over transformers' own defaults, which describe multi-billion-parameter models.
TINY_AUDIO_CONFIG: dict[str, Any] = {  # paper: Whisper-large-v3 encoder, 1280-d, 32 layers, frozen
    "d_model": 64,
    "encoder_layers": 2,
    "encoder_attention_heads": 4,
    "encoder_ffn_dim": 128,
    "decoder_layers": 1,
    "decoder_attention_heads": 4,
    "decoder_ffn_dim": 128,  # unused: encoder only
}
TINY_TEXT_CONFIG: dict[str, Any] = {  # paper: Qwen2.5-7B-Instruct (hidden 3584) with LoRA r=8
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    "vocab_size": 0,  # 0: as large as the tokenizer (a pretrained LM brings its own, often larger, vocabulary)
}


@dataclass
class EmotionOmniThinkerConfig:
    """Whisper encoder + emotion encoder -> frame-stacking adapters -> Qwen2 LM + EmotionPredictHead."""

    # --- audio front end (Whisper log-mel) ---
    n_mels: int = 80  # paper: 128 (Whisper-large-v3); 80 is Whisper-base/small's front end
    window_seconds: float = 6.0  # paper: 30 s; our synthesized user turns stay under 6 s
    # --- semantic speech encoder: the encoder half of this Whisper architecture ---
    audio_config: WhisperConfig = field(default_factory=lambda: WhisperConfig(**TINY_AUDIO_CONFIG))
    # --- emotion encoder (stand-in for emotion2vec, which cannot be downloaded here) ---
    emotion_encoder_dim: int = 64  # paper: 768 (emotion2vec base)
    emotion_encoder_layers: int = 1
    emotion_encoder_dropout: float = 0.1
    # --- SpecAugment on the log-mel in training (components/model/spec_augment.py); 0 masks turn it off ---
    spec_freq_masks: int = 2
    spec_freq_width: int = 8  # mel bins, of n_mels
    spec_time_masks: int = 2
    spec_time_width: int = 40  # mel frames (10 ms each)
    # --- frame-stacking adapters: 50 Hz -> 10 Hz ---
    stack_factor: int = 5  # paper: k = 5
    adapter_hidden: int = 256  # paper: 2048
    # --- the LM ---
    text_config: Qwen2Config = field(default_factory=lambda: Qwen2Config(**TINY_TEXT_CONFIG))
    vocab_size: int = 0  # the tokenizer's size (<= text_config.vocab_size); 0 = not set yet
    # --- chat template token ids, filled from the tokenizer (see tokenizer.py) ---
    prompt_prefix_ids: list[int] = field(default_factory=list)  # "<|im_start|>user\n"
    prompt_suffix_ids: list[int] = field(default_factory=list)  # "<|im_end|>\n<|im_start|>assistant\n"
    eos_token_id: int = -1
    pad_token_id: int = -1
    max_response_tokens: int = 64  # generation cap; synthesized replies are 10-30 words
    # --- emotion prediction ---
    emotion_dim: int = 16  # paper: emotion2vec's 768-d space; here a fixed codebook space
    head_tokens: int = 5  # paper: mean over the first 5 response tokens' hidden states
    head_dropout: float = 0.1
    user_emotions: list[str] = field(default_factory=lambda: list(USER_EMOTIONS))
    response_emotions: list[str] = field(default_factory=lambda: list(RESPONSE_EMOTIONS))
    # --- loss weights: L = text_ce + emotion_weight * L_emo + user_emotion_weight * CE(user) ---
    emotion_weight: float = 1.0
    user_emotion_weight: float = 1.0

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def mel_frames(self) -> int:
        """Mel frames in one window (Whisper's hop is 10 ms, so 100 per second)."""
        return mel_frames(self.window_seconds)

    @property
    def encoder_frames(self) -> int:
        """Whisper encoder positions for one window (and the emotion encoder's)."""
        return self.mel_frames // ENCODER_STRIDE

    def whisper_config(self) -> WhisperConfig:
        """audio_config with the front end's mel bins and window (a copy: the config itself is not changed)."""
        return WhisperConfig(
            **{**self.audio_config.to_dict(), "num_mel_bins": self.n_mels, "max_source_positions": self.encoder_frames}
        )

    def qwen2_config(self) -> Qwen2Config:
        """text_config with the tokenizer's special ids, grown to the tokenizer's size if it is smaller."""
        text = self.text_config.to_dict()
        return Qwen2Config(
            **{
                **text,
                "vocab_size": max(int(text["vocab_size"]), self.vocab_size),
                "pad_token_id": self.pad_token_id,
                "eos_token_id": self.eos_token_id,
                "bos_token_id": None,
            }
        )

    def with_pretrained_architectures(
        self, speech_encoder_path: str | None = None, llm_path: str | None = None
    ) -> EmotionOmniThinkerConfig:
        """A copy whose audio/text configs (and mel bins, window) are those of local Whisper / Qwen2 checkpoints,
        so `EmotionOmniThinkerForConditionalGeneration.load_pretrained_parts` can load their weights."""
        changes: dict[str, Any] = {}
        if speech_encoder_path:
            audio = WhisperConfig.from_pretrained(speech_encoder_path, local_files_only=True)
            changes.update(
                audio_config=audio, n_mels=audio.num_mel_bins, window_seconds=audio.max_source_positions * 2 / 100
            )  # 1500 positions: Whisper's 30 s
        if llm_path:
            changes["text_config"] = Qwen2Config.from_pretrained(llm_path, local_files_only=True)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ConfigError naming the field and the fix when the config cannot build a thinker."""
        if self.mel_frames % (ENCODER_STRIDE * self.stack_factor):
            raise ConfigError(
                f"window_seconds={self.window_seconds} gives {self.mel_frames} mel frames, not divisible by "
                f"{ENCODER_STRIDE}*stack_factor={ENCODER_STRIDE * self.stack_factor}; pick a window that is a multiple "
                f"of {ENCODER_STRIDE * self.stack_factor / 100:g} s"
            )
        if self.emotion_dim < len(self.response_emotions):
            raise ConfigError(
                f"emotion_dim={self.emotion_dim} is smaller than the {len(self.response_emotions)} response "
                "emotions; the codebook needs one orthogonal direction each: raise emotion_dim"
            )
        if self.vocab_size <= 0 or self.eos_token_id < 0 or self.pad_token_id < 0:  # a caller skipped it: a bug
            raise ValueError(
                "vocab_size/eos_token_id/pad_token_id are unset: build the config with "
                "components.model.tokenizer.apply_tokenizer(config, tokenizer)"
            )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["audio_config"] = _plain_dict(self.audio_config)
        data["text_config"] = _plain_dict(self.text_config)
        return json.loads(json.dumps(data))  # deep copy of plain data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmotionOmniThinkerConfig:
        data = dict(data)
        check_keys(cls, data)
        audio = {**TINY_AUDIO_CONFIG, **data.pop("audio_config", {})}
        text = {**TINY_TEXT_CONFIG, **data.pop("text_config", {})}
        return cls(audio_config=WhisperConfig(**audio), text_config=Qwen2Config(**text), **data)


@dataclass
class EmotionOmniTalkerConfig:
    """The paper's speech generator (the reference's SpeechGeneratorARMTP) over the thinker's reply states.

    Units are the token2wav's vocabulary (`num_units`); four specials follow it: BOS, SOS, EOS, PAD. Unlike the
    reference, repeated units are kept in the targets: the local token2wav maps each unit to 2 mel frames and has
    no duration model, so the repeats are what carries timing.
    """

    thinker_hidden_size: int = 128  # the LM's hidden size: what the gated fusion and AdaLN work in
    emotion_dim: int = 16  # the thinker's emotion vector, which conditions AdaLN
    hidden_size: int = 128  # paper: 3584 (= the LLM's); a projection bridges them when they differ
    num_attention_heads: int = 4  # paper: 32
    intermediate_size: int = 256  # paper: 14336
    prenet_layers: int = 2  # paper: 2 causal Llama layers over the conditioned text states
    decoder_layers: int = 4  # paper: 4 Llama layers over [BOS; pre-net(text); SOS; units]
    dropout: float = 0.1  # paper; on the text states the talker reads
    attention_dropout: float = 0.0  # paper: 0.1; any dropout with a mask sends CPU attention down its slow
    #                                   unfused path (2x the step time measured here), so it is off at tiny scale
    num_units: int = 512  # CosyVoice2: 6561; the local unit extractor's K
    max_position_embeddings: int = 2048
    chunk_units: int = 15  # streaming mask: every 15 units ...
    chunk_text: int = 5  # ... see 5 more text positions
    streaming_mask_prob: float = 0.5  # paper: half the samples train with the chunked mask
    mtp_modules: int = 0  # multi-token prediction: 0 as Empathy-Omni, 5 as VocalNet
    mtp_loss_decay: float = 0.8  # module k's loss weight is decay ** (k + 1)
    reference_emotion_prob: float = 0.3  # stage 2: condition on the reference reply's emotion this often
    max_units_per_token: int = 24  # generation cap per reply token (runaway guard); replies run ~7 units/token
    max_unit_run: int = 50  # ... and a unit repeated this often in a row (2 s) ends the reply: speech
    #                                   never holds one 40 ms sound that long; an undertrained talker can
    repetition_window: int = 0  # reference inference: penalise the last N units (0 = off) ...
    repetition_penalty: float = 1.0  # ... dividing their logits by this

    @property
    def bos_id(self) -> int:
        return self.num_units

    @property
    def sos_id(self) -> int:
        return self.num_units + 1

    @property
    def eos_id(self) -> int:
        return self.num_units + 2

    @property
    def pad_id(self) -> int:
        return self.num_units + 3

    @property
    def vocab_size(self) -> int:
        return self.num_units + 4

    def validate(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"talker hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}"
            )
        if self.chunk_units < 1 or self.chunk_text < 1:
            raise ConfigError("talker chunk_units and chunk_text must be >= 1")
        if not 0 <= self.streaming_mask_prob <= 1 or not 0 <= self.reference_emotion_prob <= 1:
            raise ConfigError("talker streaming_mask_prob and reference_emotion_prob are probabilities in [0, 1]")
        if self.mtp_modules < 0 or self.num_units < 2:
            raise ConfigError("talker mtp_modules must be >= 0 and num_units >= 2")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmotionOmniTalkerConfig:
        check_keys(cls, data)
        return cls(**data)


@dataclass
class EmotionOmniConfig:
    """The whole model. `talker_config`/`token2wav_config` are None for a stage-1 (text-only) model."""

    thinker_config: EmotionOmniThinkerConfig = field(default_factory=EmotionOmniThinkerConfig)
    talker_config: EmotionOmniTalkerConfig | None = None
    token2wav_config: EmotionOmniToken2WavConfig | None = None

    @property
    def enable_audio_output(self) -> bool:
        return self.talker_config is not None

    def validate(self) -> None:
        """Raise ConfigError naming the field and the fix when the parts do not fit together."""
        self.thinker_config.validate()
        if (self.talker_config is None) != (self.token2wav_config is None):
            raise ConfigError(
                "talker_config and token2wav_config come together: the talker predicts the "
                "token2wav's units. Set both (a speaking model) or neither (text only)"
            )
        if self.talker_config is None:
            return
        talker, token2wav, thinker = self.talker_config, self.token2wav_config, self.thinker_config
        talker.validate()
        token2wav.validate()
        for name, mine, theirs in (
            ("thinker_hidden_size", talker.thinker_hidden_size, thinker.hidden_size),
            ("emotion_dim", talker.emotion_dim, thinker.emotion_dim),
        ):
            if mine != theirs:
                raise ConfigError(f"talker_config.{name}={mine} but the thinker's is {theirs}: set it to {theirs}")
        if talker.num_units != token2wav.num_units:
            raise ConfigError(
                f"talker_config.num_units={talker.num_units} but token2wav_config.num_units="
                f"{token2wav.num_units}: the talker must predict the token2wav's units"
            )
        if token2wav.backend == "local" and token2wav.emotion_dim != thinker.emotion_dim:
            raise ConfigError(
                f"token2wav_config.emotion_dim={token2wav.emotion_dim} but the thinker's is "
                f"{thinker.emotion_dim}: set it to {thinker.emotion_dim}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "thinker_config": self.thinker_config.to_dict(),
            "talker_config": self.talker_config.to_dict() if self.talker_config else None,
            "token2wav_config": self.token2wav_config.to_dict() if self.token2wav_config else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmotionOmniConfig:
        check_keys(cls, data)
        talker, token2wav = data.get("talker_config"), data.get("token2wav_config")
        return cls(
            thinker_config=EmotionOmniThinkerConfig.from_dict(data.get("thinker_config") or {}),
            talker_config=EmotionOmniTalkerConfig.from_dict(talker) if talker else None,
            token2wav_config=EmotionOmniToken2WavConfig.from_dict(token2wav) if token2wav else None,
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> EmotionOmniConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except ValueError as error:
            raise ConfigError(
                f"{path}: {error}. A config.json written before the thinker/talker split cannot be "
                "read: train the model again"
            ) from None


def _plain_dict(config) -> dict[str, Any]:
    """A transformers config as the keys its constructor takes (no bookkeeping such as transformers_version)."""
    data = config.to_dict()
    for key in ("transformers_version", "architectures", "model_type", "_name_or_path", "dtype", "torch_dtype"):
        data.pop(key, None)
    return data
