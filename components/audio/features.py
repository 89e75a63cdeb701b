"""Whisper's log-mel front end, fixed-window, shared by training, evaluation and serving."""

from __future__ import annotations

import math

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from components.contracts import SAMPLE_RATE

HOP_LENGTH = 160  # Whisper's mel hop: 10 ms, 100 mel frames a second
ENCODER_STRIDE = 2  # Whisper's encoder halves the frame rate (its second convolution)


def mel_frames(window_seconds: float) -> int:
    """Mel frames in a window of `window_seconds`."""
    return int(round(window_seconds * SAMPLE_RATE / HOP_LENGTH))


def adapter_frames(window_seconds: float, stack_factor: int) -> int:
    """Frames the adapter hands the LLM for a whole window: mel hop -> encoder stride -> stacking k frames."""
    return mel_frames(window_seconds) // ENCODER_STRIDE // stack_factor


class LogMelFrontend:
    """Waveforms -> (B, n_mels, window frames) log-mel + the number of valid 10 Hz frames per item.

    Audio longer than the window is cut (the encoder has fixed positions); shorter audio is zero-padded the
    way Whisper pads, and `valid_frames` lets the model drop the padded tail before the LLM sees it.
    """

    def __init__(self, n_mels: int, window_seconds: float, stack_factor: int):
        self.window_samples = int(round(window_seconds * SAMPLE_RATE))
        self.stack_factor = stack_factor
        self.extractor = WhisperFeatureExtractor(
            feature_size=n_mels,
            sampling_rate=SAMPLE_RATE,
            hop_length=HOP_LENGTH,
            n_fft=400,
            chunk_length=window_seconds,
        )
        self.max_frames = adapter_frames(window_seconds, stack_factor)

    def valid_frames(self, n_samples: int) -> int:
        """10 Hz adapter frames that carry audio: mel hop -> encoder stride -> stack k."""
        n = min(n_samples, self.window_samples)
        return max(1, min(self.max_frames, math.ceil(n / HOP_LENGTH / ENCODER_STRIDE / self.stack_factor)))

    def __call__(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        clipped = [np.asarray(w, dtype=np.float32)[: self.window_samples] for w in waves]
        feats = self.extractor(
            clipped,
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            padding="max_length",
            max_length=self.window_samples,
        )
        frames = torch.tensor([self.valid_frames(len(w)) for w in clipped], dtype=torch.long)
        return feats.input_features.float(), frames  # (B, n_mels, T_mel), (B,)
