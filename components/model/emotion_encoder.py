"""EmotionEncoder: frame-level emotion features over the same audio the speech encoder hears.

The paper uses a frozen emotion2vec; no pretrained weights can be fetched here, so this is a small
convolution + transformer stack over the log-mel, trained jointly. Its output rate (50 Hz, stride 2) matches
Whisper's so both streams line up frame for frame before the adapters.
"""

from __future__ import annotations

import torch
from torch import nn


class EmotionEncoder(nn.Module):
    def __init__(self, n_mels: int, dim: int, layers: int, max_frames: int, dropout: float = 0.0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, dim, kernel_size=3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(dim, dim, kernel_size=3, padding=1),
            nn.GELU(),
        )
        self.position = nn.Parameter(torch.zeros(1, max_frames, dim))
        block = nn.TransformerEncoderLayer(
            d_model=dim, nhead=4, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv(mel).transpose(1, 2)  # (B, n_mels, T_mel) -> (B, T_mel/2, dim)
        x = x + self.position[:, : x.shape[1]]
        return self.norm(self.blocks(x))  # (B, T_mel/2, dim) at 50 Hz
