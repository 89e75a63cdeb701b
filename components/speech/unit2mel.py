"""UnitToMel: speech units -> log-mel, conditioned on the emotion vector and the speaker.

The local stand-in for CosyVoice2's flow model, which turns tokens + a speaker prompt into an 80-bin mel with 2
frames per token. Here: unit embeddings plus a speaker embedding, convolution blocks whose LayerNorm is
modulated by the emotion vector (FiLM), an upsampling to `frames_per_unit` frames, and a residual over the unit
centroids' own mel, so it starts from what k-means kept and learns what it lost: pitch, energy, smoothness.

Every convolution has kernel 3, so each looks one step ahead: `unit_layers` units plus `frame_layers` frames of
look-ahead in all (3 units with the defaults), the reference streaming vocoder's look-ahead, which makes a
streamed chunk final once 3 more units are known.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.speech.config import EmotionOmniToken2WavConfig


class ConditionedConvBlock(nn.Module):
    """x + Conv1x1(GELU(Conv3(FiLM(LayerNorm(x), emotion)))), on (B, T, C).

    `mask` (B, T) zeroes padded positions before the kernel-3 convolution, so the last real position sees zeros
    past its end whether it is alone or padded in a batch: batched and one-by-one mels agree.
    """

    def __init__(self, channels: int, condition_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)
        self.film = nn.Linear(condition_size, 2 * channels)
        nn.init.zeros_(self.film.weight)  # start unconditioned (scale 1, shift 0), like the talker's AdaLN
        nn.init.zeros_(self.film.bias)
        self.conv = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.mix = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(condition).chunk(2, dim=-1)  # (B, C) each
        h = (self.norm(x) * (1 + scale[:, None]) + shift[:, None]) * mask[..., None]  # (B, T, C)
        h = self.mix(F.gelu(self.conv(h.transpose(1, 2)))).transpose(1, 2)
        return x + h


class UnitToMel(nn.Module):
    def __init__(self, config: EmotionOmniToken2WavConfig):
        super().__init__()
        self.config = config
        channels = config.hidden_size
        self.embed_units = nn.Embedding(config.num_units + 1, channels, padding_idx=config.num_units)
        self.embed_speaker = nn.Embedding(len(config.speakers), channels)
        self.unit_blocks = nn.ModuleList(
            ConditionedConvBlock(channels, config.emotion_dim) for _ in range(config.unit_layers)
        )
        self.upsample = nn.Linear(channels, config.frames_per_unit * channels)
        self.frame_blocks = nn.ModuleList(
            ConditionedConvBlock(channels, config.emotion_dim) for _ in range(config.frame_layers)
        )
        self.out = nn.Linear(channels, config.mel.n_mels)
        nn.init.zeros_(self.out.weight)  # the first prediction is the centroid mel itself
        nn.init.zeros_(self.out.bias)

    def forward(
        self, units: torch.Tensor, base_mel: torch.Tensor, emotion: torch.Tensor, speaker: torch.Tensor
    ) -> torch.Tensor:
        """units (B, N) (num_units = padding), base_mel (B, n_mels, N*k) from the centroids, emotion (B, E),
        speaker (B,) indices into config.speakers -> log-mel (B, n_mels, N*k)."""
        k = self.config.frames_per_unit
        mask = (units != self.config.num_units).float()  # (B, N): 0 = padding
        x = self.embed_units(units) + self.embed_speaker(speaker)[:, None]  # (B, N, C)
        for block in self.unit_blocks:
            x = block(x, emotion, mask)
        b, n, c = x.shape
        x = self.upsample(x).reshape(b, n * k, c)  # (B, N*k, C)
        mask = mask.repeat_interleave(k, dim=1)
        for block in self.frame_blocks:
            x = block(x, emotion, mask)
        return base_mel + self.out(x).transpose(1, 2)  # (B, n_mels, N*k)
