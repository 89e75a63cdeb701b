"""CosyVoice2's audio front end: speech tokens and speaker prompts from 16 kHz audio, with onnxruntime.

    frontend = CosyVoice2Frontend(ckpt / "speech_tokenizer_v2.onnx", ckpt / "campplus.onnx", config)
    units = frontend.speech_tokens(wave16k)       # list[int] in [0, 6561), 25 per second
    prompt = frontend.prompt(wave16k)             # tokens + mel + CAM++ embedding: the voice to imitate

As the reference (cosyvoice/cli/frontend.py): the tokenizer gets Whisper's 128-bin log-mel as `feats`
(1, 128, T) float32 plus `feats_length` (1,) int32 and returns the token ids first; CAM++ gets the Kaldi
fbank with its per-utterance mean removed, (1, T, 80) float32, and returns a (1, 192) embedding. Inputs are
addressed by position, as the reference does, so the exact tensor names in the files do not matter.
The prompt's tokens and mel are trimmed to a common length (2 mel frames per token), as the reference does.
Difference: the prompt mel is computed from the 16 kHz audio upsampled to 24 kHz (the reference reads the
file at 24 kHz); the mel stops at 8 kHz, below 16 kHz audio's Nyquist frequency, so nothing it uses is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from scipy.signal import resample_poly

from components.contracts import SAMPLE_RATE
from components.errors import ConfigError
from components.speech.cosyvoice2.config import CosyVoice2Config
from components.speech.cosyvoice2.errors import CheckpointError
from components.speech.cosyvoice2.features import (
    kaldi_fbank,
    prompt_mel,
    whisper_log_mel,
)

MAX_TOKENIZER_SECONDS = 30.0  # the tokenizer's (Whisper encoder's) window; the reference refuses longer audio


@dataclass(frozen=True)
class SpeakerPrompt:
    """The zero-shot voice prompt the flow imitates: tokens (1, P), mel (1, ratio * P, 80), embedding (1, 192)."""

    tokens: torch.Tensor
    feat: torch.Tensor
    embedding: torch.Tensor

    @classmethod
    def empty(cls, mel_channels: int, embed_dim: int) -> SpeakerPrompt:
        """No prompt: no tokens, no mel, a zero speaker embedding (the flow then picks a voice of its own)."""
        return cls(torch.zeros(1, 0, dtype=torch.int32), torch.zeros(1, 0, mel_channels), torch.zeros(1, embed_dim))

    def to(self, device: torch.device | str) -> SpeakerPrompt:
        return SpeakerPrompt(self.tokens.to(device), self.feat.to(device), self.embedding.to(device))


def _session(path: Path, min_inputs: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1  # as the reference: these models are small, threads mostly add overhead
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors (InvalidProtobuf, Fail) subclass Exception only
        raise CheckpointError(
            f"{path} could not be loaded by onnxruntime ({err}); re-download it with the CosyVoice2-0.5B checkpoint"
        ) from None
    if len(session.get_inputs()) < min_inputs:
        raise CheckpointError(
            f"{path} takes {len(session.get_inputs())} inputs, expected {min_inputs}; is it the right file?"
        )
    return session


class CosyVoice2Frontend:
    """onnxruntime sessions for the speech tokenizer and CAM++, plus the features they and the flow need."""

    def __init__(self, tokenizer_path: Path, campplus_path: Path, config: CosyVoice2Config):
        self.config = config
        self.tokenizer_path, self.campplus_path = Path(tokenizer_path), Path(campplus_path)
        self.tokenizer = _session(self.tokenizer_path, min_inputs=2)
        self.campplus = _session(self.campplus_path, min_inputs=1)

    def speech_tokens(self, wave16k: np.ndarray) -> list[int]:
        """(T,) float32 16 kHz waveform (at most 30 s) -> speech token ids in [0, vocab_size), 25 per second."""
        wave = _check_wave(wave16k, "speech tokenizer")
        if wave.size / SAMPLE_RATE > MAX_TOKENIZER_SECONDS:
            raise ConfigError(
                f"audio is {wave.size / SAMPLE_RATE:.1f} s; the speech tokenizer takes at most "
                f"{MAX_TOKENIZER_SECONDS:g} s: split it and tokenize the pieces"
            )
        feats = whisper_log_mel(wave).unsqueeze(0).numpy()  # (1, 128, frames)
        inputs = self.tokenizer.get_inputs()
        outputs = self.tokenizer.run(
            None, {inputs[0].name: feats, inputs[1].name: np.array([feats.shape[2]], dtype=np.int32)}
        )
        tokens = np.asarray(outputs[0]).reshape(-1)
        if tokens.size and (
            not np.issubdtype(tokens.dtype, np.integer)
            or tokens.min() < 0
            or tokens.max() >= self.config.flow.vocab_size
        ):
            raise CheckpointError(
                f"{self.tokenizer_path} returned token ids outside "
                f"[0, {self.config.flow.vocab_size}) (dtype {tokens.dtype}, range "
                f"{tokens.min()}..{tokens.max()}); it does not belong to this flow model "
                "(CosyVoice2 needs speech_tokenizer_v2)"
            )
        return tokens.astype(np.int64).tolist()

    def speaker_embedding(self, wave16k: np.ndarray) -> torch.Tensor:
        """(T,) 16 kHz waveform -> (1, spk_embed_dim) CAM++ speaker embedding."""
        feat = kaldi_fbank(_check_wave(wave16k, "speaker encoder"))
        feat = feat - feat.mean(dim=0, keepdim=True)  # per-utterance mean removal
        name = self.campplus.get_inputs()[0].name
        embedding = np.asarray(self.campplus.run(None, {name: feat.unsqueeze(0).numpy()})[0], dtype=np.float32)
        expected = self.config.flow.spk_embed_dim
        if embedding.size != expected:
            raise CheckpointError(
                f"{self.campplus_path} returned a {embedding.size}-d embedding but the flow takes "
                f"spk_embed_dim={expected}; use the campplus.onnx of the same checkpoint"
            )
        return torch.from_numpy(embedding.reshape(1, expected))

    def prompt(self, wave16k: np.ndarray) -> SpeakerPrompt:
        """The zero-shot prompt of a 16 kHz recording: its tokens, its 24 kHz mel and its speaker embedding."""
        wave = _check_wave(wave16k, "prompt")
        tokens = self.speech_tokens(wave)
        rate = self.config.sample_rate
        step = math.gcd(rate, SAMPLE_RATE)
        wave_native = resample_poly(wave, rate // step, SAMPLE_RATE // step).astype(np.float32)
        feat = prompt_mel(wave_native, self.config.feat_extractor)  # (frames, 80)
        ratio = self.config.flow.token_mel_ratio
        count = min(feat.size(0) // ratio, len(tokens))  # force exactly `ratio` frames per token
        if count == 0:
            raise ConfigError(
                f"prompt audio is {wave.size / SAMPLE_RATE:.3f} s, too short to give one speech token; "
                "use a few seconds of clean speech"
            )
        return SpeakerPrompt(
            tokens=torch.tensor([tokens[:count]], dtype=torch.int32),
            feat=feat[: count * ratio].unsqueeze(0),
            embedding=self.speaker_embedding(wave),
        )


def _check_wave(wave: np.ndarray, what: str) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(
            f"{what} audio must be a 1-D float waveform at {SAMPLE_RATE} Hz, got shape {wave.shape} "
            f"dtype {wave.dtype}; load it with components.audio.io.load_wav"
        )
    if not np.isfinite(wave).all():
        raise ValueError(f"{what} audio contains NaN or infinite samples")
    return wave.astype(np.float32, copy=False)
