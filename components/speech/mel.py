"""The speech side's log-mel spectrogram and its inverse (Griffin-Lim), with torch.stft/istft only.

One `MelConfig` fixes the analysis every speech part shares: the unit extractor clusters these frames, the
unit -> mel model predicts them, Griffin-Lim turns them back into a waveform, and evaluation compares them.
It differs from the thinker's Whisper front end (10 ms hop, 6 s window) on purpose: a 20 ms hop makes 50 mel
frames per second, 2 per speech unit at 25 units/s, as CosyVoice2's flow makes 2 mel frames per token.

    mel = MelSpectrogram(MelConfig())
    frames = mel(wave)                      # (n_mels, T) log-mel of a float32 16 kHz waveform
    wave2 = GriffinLim(MelConfig())(frames) # back to audio; phase is estimated, so it sounds a little metallic

Measured on 10 espeak-ng replies (2 cores, 2026-11-28): from the true mel, plain Griffin-Lim with 32
iterations gave STOI 0.922 in 1.62 s; the fast variant (momentum 0.99, Perraudin et al. 2013) 0.929 with 16
iterations in 0.81 s, the default here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from components.contracts import SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024  # 64 ms window: resolves the harmonics of low voices
    hop_length: int = 320  # 20 ms: 50 frames/s
    n_mels: int = 80  # CosyVoice2's flow predicts 80-bin mels too
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5  # log(max(mel, floor)): -11.5 is digital silence

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class MelSpectrogram(torch.nn.Module):
    """Waveform(s) -> natural-log mel spectrogram, (T,) -> (n_mels, frames) or (B, T) -> (B, n_mels, frames).

    frames = 1 + T // hop_length (torch.stft, centred).
    """

    def __init__(self, config: MelConfig = MelConfig()):
        super().__init__()
        self.config = config
        filters = mel_filter_bank(
            num_frequency_bins=config.n_fft // 2 + 1,
            num_mel_filters=config.n_mels,
            min_frequency=config.f_min,
            max_frequency=config.f_max,
            sampling_rate=config.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("filters", torch.tensor(filters.T, dtype=torch.float32), persistent=False)  # (M, F)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32) if isinstance(wave, np.ndarray) else wave)
        wave = wave.to(self.window.device, torch.float32)
        c = self.config
        spec = torch.stft(wave, c.n_fft, c.hop_length, window=self.window, return_complex=True).abs()
        return torch.log(torch.clamp(self.filters @ spec, min=c.log_floor))


class GriffinLim(torch.nn.Module):
    """Log-mel (n_mels, frames) -> waveform frames * hop_length samples long (or `length`), float32.

    The mel is mapped back to a linear magnitude with the filter bank's pseudo-inverse, then phase is found by
    `n_iter` rounds of fast Griffin-Lim (`momentum` 0 is the plain algorithm). Seeded, so the same mel always
    gives the same audio.
    """

    def __init__(self, config: MelConfig = MelConfig(), n_iter: int = 16, momentum: float = 0.99, seed: int = 0):
        super().__init__()
        self.config, self.n_iter, self.momentum, self.seed = config, n_iter, momentum, seed
        mel = MelSpectrogram(config)
        self.register_buffer("inverse", torch.linalg.pinv(mel.filters), persistent=False)  # (F, M)
        self.register_buffer("window", mel.window.clone(), persistent=False)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor, length: int | None = None) -> torch.Tensor:
        c = self.config
        log_mel = torch.as_tensor(log_mel, dtype=torch.float32, device=self.inverse.device)
        magnitude = torch.clamp(self.inverse @ torch.exp(log_mel), min=0.0)  # (F, frames)
        length = log_mel.shape[-1] * c.hop_length if length is None else length
        if length <= 0 or log_mel.shape[-1] < 2:
            return torch.zeros(max(length, 0))
        inner = (log_mel.shape[-1] - 1) * c.hop_length  # what istft/stft round-trip on without adding a frame
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        phase = torch.rand(magnitude.shape, generator=generator).to(magnitude.device)
        angles = torch.exp(2j * torch.pi * phase)
        previous = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            wave = torch.istft(magnitude * angles, c.n_fft, c.hop_length, window=self.window, length=inner)
            rebuilt = torch.stft(wave, c.n_fft, c.hop_length, window=self.window, return_complex=True)
            angles = rebuilt - previous * (self.momentum / (1 + self.momentum))  # the "fast" extrapolation
            angles = angles / (angles.abs() + 1e-16)
            previous = rebuilt
        wave = torch.istft(magnitude * angles, c.n_fft, c.hop_length, window=self.window, length=inner)
        return torch.nn.functional.pad(wave, (0, max(0, length - inner)))[:length]
