"""CosyVoice2's vocoder: HiFTGenerator (HiFTNet: neural source filter + iSTFTNet), 80-bin mel -> 24 kHz audio.

    mel -> ConvRNNF0Predictor -> f0 -> harmonic sine source (SourceModuleHnNSF) -> its STFT
    mel -> conv_pre -> [LeakyReLU, upsampling ConvTranspose, + downsampled source, Snake ResBlocks] x3
        -> conv_post -> log-magnitude and phase (n_fft/2+1 bins each) -> iSTFT

Each mel frame becomes prod(upsample_rates) * hop_len samples (8*5*3*4 = 480 at 24 kHz for CosyVoice2).
Names follow the reference (cosyvoice/hifigan/generator.py, f0_predictor.py) so `hift.pt` loads with
strict=True. Weight norm uses torch's parametrization API, whose load hook also accepts the older
`weight_g`/`weight_v` key layout, so checkpoints saved either way load.

Differences from the reference: the source's random harmonic phases and noise come from an explicit
`torch.Generator` (`inference(mel, generator=...)`) instead of the global RNG, so a seeded call repeats
exactly; inference only (no training `forward`) and no `cache_source` streaming input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from components.speech.cosyvoice2.config import F0PredictorConfig, HiFTConfig


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class Snake(nn.Module):
    """x + sin^2(alpha x) / alpha, one learned alpha per channel (linear scale, as CosyVoice2 uses)."""

    def __init__(self, in_features: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(in_features))
        self.no_div_by_zero = 1e-9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view(1, -1, 1)
        return x + torch.sin(x * alpha).pow(2) / (alpha + self.no_div_by_zero)


class ResBlock(nn.Module):
    """HiFi-GAN residual block: per dilation, Snake -> dilated conv -> Snake -> conv, added to the input."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=_padding(kernel_size))) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for act1, conv1, act2, conv2 in zip(self.activations1, self.convs1, self.activations2, self.convs2):
            x = x + conv2(act2(conv1(act1(x))))
        return x


class ConvRNNF0Predictor(nn.Module):
    """Mel (B, 80, T) -> f0 in Hz (B, T): five weight-normed convs with ELU, then a linear head, |.|."""

    def __init__(self, config: F0PredictorConfig):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [
                weight_norm(
                    nn.Conv1d(
                        config.in_channels if i == 0 else config.cond_channels,
                        config.cond_channels,
                        kernel_size=3,
                        padding=1,
                    )
                ),
                nn.ELU(),
            ]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(config.cond_channels, config.num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.condnet(x).transpose(1, 2)).squeeze(-1).abs()


class SineGen(nn.Module):
    """f0 (B, 1, N) at the output rate -> (sines of f0 and its harmonics, voiced mask), noise added."""

    def __init__(self, samp_rate: int, harmonic_num: int, sine_amp: float, noise_std: float, voiced_threshold: float):
        super().__init__()
        self.sampling_rate, self.harmonic_num = samp_rate, harmonic_num
        self.sine_amp, self.noise_std, self.voiced_threshold = sine_amp, noise_std, voiced_threshold

    @torch.no_grad()
    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        harmonics = torch.arange(1, self.harmonic_num + 2, device=f0.device, dtype=f0.dtype).view(1, -1, 1)
        cycles = f0 * harmonics / self.sampling_rate  # (B, H+1, N) cycles per sample
        theta = 2 * math.pi * (torch.cumsum(cycles, dim=-1) % 1)
        phase = (torch.rand(f0.size(0), self.harmonic_num + 1, 1, generator=generator) * 2 - 1) * math.pi
        phase[:, 0] = 0  # the fundamental starts at phase 0; overtones at random phases
        sines = self.sine_amp * torch.sin(theta + phase.to(f0.device))
        uv = (f0 > self.voiced_threshold).to(f0.dtype)  # (B, 1, N)
        # Unvoiced frames get noise about as loud as the sine would be; voiced ones a little.
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn(sines.shape, generator=generator).to(f0.device)
        return sines * uv + noise, uv


class SourceModuleHnNSF(nn.Module):
    """Merges the harmonic sines into one excitation signal with a linear layer and tanh."""

    def __init__(
        self, sampling_rate: int, harmonic_num: int, sine_amp: float, add_noise_std: float, voiced_threshod: float
    ):
        super().__init__()
        self.l_sin_gen = SineGen(sampling_rate, harmonic_num, sine_amp, add_noise_std, voiced_threshod)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)
        self.l_tanh = nn.Tanh()

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """f0 (B, N, 1) -> source (B, N, 1)."""
        sines, _ = self.l_sin_gen(f0.transpose(1, 2), generator)
        return self.l_tanh(self.l_linear(sines.transpose(1, 2)))


class HiFTGenerator(nn.Module):
    """`inference(mel (B, 80, T)) -> (B, T * hop_length)` waveform in [-audio_limit, audio_limit]."""

    def __init__(self, config: HiFTConfig):
        super().__init__()
        c = config
        self.config = c
        self.n_fft, self.hop_len = c.istft_params["n_fft"], c.istft_params["hop_len"]
        self.upsample_scale = c.hop_length
        self.num_kernels = len(c.resblock_kernel_sizes)
        self.m_source = SourceModuleHnNSF(
            c.sampling_rate, c.nb_harmonics, c.nsf_alpha, c.nsf_sigma, c.nsf_voiced_threshold
        )
        self.conv_pre = weight_norm(nn.Conv1d(c.in_channels, c.base_channels, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(
                nn.ConvTranspose1d(c.base_channels // 2**i, c.base_channels // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            )
            for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes))
        )
        # The source's STFT enters at every stage, strided down to that stage's rate.
        self.source_downs, self.source_resblocks = nn.ModuleList(), nn.ModuleList()
        cumulative = [math.prod(c.upsample_rates[::-1][:i]) for i in range(len(c.upsample_rates))][::-1]
        for i, (u, k, d) in enumerate(
            zip(cumulative, c.source_resblock_kernel_sizes, c.source_resblock_dilation_sizes)
        ):
            width = c.base_channels // 2 ** (i + 1)
            self.source_downs.append(
                nn.Conv1d(self.n_fft + 2, width, 1, 1)
                if u == 1
                else nn.Conv1d(self.n_fft + 2, width, u * 2, u, padding=u // 2)
            )
            self.source_resblocks.append(ResBlock(width, k, d))
        self.resblocks = nn.ModuleList(
            ResBlock(c.base_channels // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes)
        )
        self.conv_post = weight_norm(nn.Conv1d(c.base_channels // 2 ** len(self.ups), self.n_fft + 2, 7, 1, padding=3))
        self.reflection_pad = nn.ReflectionPad1d((1, 0))
        self.register_buffer("stft_window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        self.f0_predictor = ConvRNNF0Predictor(c.f0_predictor)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window, return_complex=True)
        return torch.cat([spec.real, spec.imag], dim=1)  # (B, n_fft + 2, frames)

    def _istft(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        spec = torch.polar(magnitude.clip(max=1e2), phase)
        return torch.istft(spec, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window)

    def decode(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) and source (B, 1, T * hop_length) -> waveform (B, T * hop_length)."""
        s_stft = self._stft(source.squeeze(1))
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, self.config.lrelu_slope))
            if i == len(self.ups) - 1:
                x = self.reflection_pad(x)  # one extra frame to match the source STFT's centred frames
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            x = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels)) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as in the reference
        bins = self.n_fft // 2 + 1
        magnitude, phase = torch.exp(x[:, :bins]), torch.sin(x[:, bins:])  # sin() is the reference's, kept
        return self._istft(magnitude, phase).clamp(-self.config.audio_limit, self.config.audio_limit)

    @torch.inference_mode()
    def inference(self, speech_feat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mel (B, 80, T) -> waveform (B, T * hop_length); `generator` seeds the source's phases and noise."""
        f0 = self.f0_predictor(speech_feat)  # (B, T) Hz
        f0 = f0.repeat_interleave(self.upsample_scale, dim=1).unsqueeze(-1)  # (B, N, 1) at the output rate
        source = self.m_source(f0, generator).transpose(1, 2)  # (B, 1, N)
        return self.decode(speech_feat, source)
