"""The three audio features CosyVoice2's front end computes, with torch only (no whisper, torchaudio, librosa).

- `whisper_log_mel`: the speech tokenizer's input, openai-whisper's `log_mel_spectrogram(audio, n_mels=128)`
  (16 kHz, 25 ms Hann window, 10 ms hop, log10 power clipped to 8 below the max, scaled to about [-1, 1]).
- `kaldi_fbank`: CAM++'s input, `torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80, dither=0,
  sample_frequency=16000)` with Kaldi's other defaults (povey window, pre-emphasis 0.97, DC removal,
  512-point FFT, 20 Hz .. Nyquist mel bank on Kaldi's mel scale, natural-log energies).
- `prompt_mel`: the flow's target feature, Matcha-TTS's `mel_spectrogram` with the YAML's `feat_extractor`
  arguments (24 kHz, n_fft 1920, hop 480, 80 bins, 0..8 kHz, log of the clamped magnitude mel).

Each is written from the reference's definition; the Slaney mel filters come from transformers (the ones
its Whisper feature extractor uses, equal to librosa's).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank

from components.errors import ConfigError
from components.speech.cosyvoice2.config import MelFeatConfig

WHISPER_RATE, WHISPER_N_FFT, WHISPER_HOP = 16_000, 400, 160
KALDI_RATE, KALDI_FRAME, KALDI_SHIFT, KALDI_N_FFT = 16_000, 400, 160, 512  # 25 ms / 10 ms, padded to 2^9


def _as_tensor(wave: np.ndarray | torch.Tensor) -> torch.Tensor:
    wave = torch.as_tensor(np.asarray(wave, dtype=np.float32) if isinstance(wave, np.ndarray) else wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (T,), got {tuple(wave.shape)}; downmix first")
    return wave.float()


def _slaney_filters(n_fft: int, n_mels: int, rate: int, fmin: float, fmax: float) -> torch.Tensor:
    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=fmin,
        max_frequency=fmax,
        sampling_rate=rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.tensor(filters.T, dtype=torch.float32)  # (n_mels, n_fft // 2 + 1)


def whisper_log_mel(wave16k: np.ndarray | torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """(T,) 16 kHz waveform -> (n_mels, T // 160) Whisper log-mel (the last STFT frame is dropped, as Whisper's)."""
    wave = _as_tensor(wave16k)
    if wave.numel() <= WHISPER_N_FFT // 2:
        raise ConfigError(
            f"audio is {wave.numel()} samples; the speech tokenizer needs more than "
            f"{WHISPER_N_FFT // 2} (12.5 ms at 16 kHz)"
        )
    window = torch.hann_window(WHISPER_N_FFT)
    spec = torch.stft(wave, WHISPER_N_FFT, WHISPER_HOP, window=window, return_complex=True)
    power = spec[:, :-1].abs() ** 2  # (201, frames)
    mel = _slaney_filters(WHISPER_N_FFT, n_mels, WHISPER_RATE, 0.0, WHISPER_RATE / 2) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)  # 80 dB dynamic range
    return (log_spec + 4.0) / 4.0


def _kaldi_mel_banks(n_mels: int, low_freq: float = 20.0) -> torch.Tensor:
    """Kaldi's triangular mel filters (mel = 1127 ln(1 + f/700)) over the FFT bins, (n_mels, n_fft // 2 + 1)."""

    def mel(freq: torch.Tensor | float) -> torch.Tensor:
        return 1127.0 * torch.log(1.0 + torch.as_tensor(freq, dtype=torch.float64) / 700.0)

    bins = KALDI_N_FFT // 2
    mel_low, mel_high = mel(low_freq), mel(KALDI_RATE / 2)
    delta = (mel_high - mel_low) / (n_mels + 1)
    left = mel_low + torch.arange(n_mels, dtype=torch.float64).unsqueeze(1) * delta  # (n_mels, 1)
    centre, right = left + delta, left + 2 * delta
    freqs = mel(KALDI_RATE / KALDI_N_FFT * torch.arange(bins, dtype=torch.float64)).unsqueeze(0)  # (1, bins)
    up, down = (freqs - left) / (centre - left), (right - freqs) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).float()  # the Nyquist bin gets no weight, as in Kaldi


def kaldi_fbank(wave16k: np.ndarray | torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(T,) 16 kHz waveform -> (frames, n_mels) Kaldi log-mel fbank, frames = 1 + (T - 400) // 160."""
    wave = _as_tensor(wave16k)
    if wave.numel() < KALDI_FRAME:
        raise ConfigError(
            f"audio is {wave.numel()} samples; the speaker encoder needs at least {KALDI_FRAME} (25 ms at 16 kHz)"
        )
    frames = wave.unfold(0, KALDI_FRAME, KALDI_SHIFT)  # (F, 400), snip_edges=True
    frames = frames - frames.mean(dim=1, keepdim=True)  # remove DC offset
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # first sample repeats itself
    frames = frames - 0.97 * previous  # pre-emphasis
    frames = frames * torch.hann_window(KALDI_FRAME, periodic=False).pow(0.85)  # Povey window
    power = torch.fft.rfft(frames, n=KALDI_N_FFT).abs() ** 2  # (F, 257)
    energies = power @ _kaldi_mel_banks(n_mels).T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()


def prompt_mel(wave: np.ndarray | torch.Tensor, config: MelFeatConfig) -> torch.Tensor:
    """(T,) waveform at config.sampling_rate -> (frames, num_mels) log-mel, frames = T // hop_size (center=False)."""
    wave = _as_tensor(wave)
    c = config
    pad = (c.n_fft - c.hop_size) // 2
    if wave.numel() <= pad:
        raise ConfigError(
            f"prompt audio is {wave.numel()} samples at {c.sampling_rate} Hz; give at least "
            f"{c.n_fft} (one {c.n_fft / c.sampling_rate * 1000:.0f} ms window)"
        )
    padded = F.pad(wave.view(1, 1, -1), (pad, pad), mode="reflect").view(-1)
    spec = torch.stft(
        padded,
        c.n_fft,
        c.hop_size,
        c.win_size,
        window=torch.hann_window(c.win_size),
        center=c.center,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    fmax = c.fmax if c.fmax is not None else c.sampling_rate / 2
    mel = _slaney_filters(c.n_fft, c.num_mels, c.sampling_rate, float(c.fmin), float(fmax)) @ magnitude
    return torch.log(torch.clamp(mel, min=1e-5)).T  # (frames, num_mels)
