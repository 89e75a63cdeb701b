"""How the talker reads the thinker: a gated fusion of two views of each reply token, then AdaLN on emotion.

Both follow the reference speech generator (../shared/stage2-notes.md):

    g = sigmoid(Linear(2H -> H)([h; e]))      h: the LM's last hidden state at a reply token
    x = g * h + (1 - g) * e                   e: the LM input embedding of the same token
    y = gamma(c) * LayerNorm(x) + beta(c)     c: the emotion vector; gamma = 1, beta = 0 at initialisation

Without the gated fusion and AdaLN the paper's empathy (GPT) score drops from 3.97 to 3.15.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedFusion(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.gate = nn.Linear(2 * hidden_size, hidden_size)

    def gate_values(self, hidden: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """g in (0, 1), per token and channel: how much of the hidden state (vs the embedding) passes."""
        return torch.sigmoid(self.gate(torch.cat([hidden, embeds], dim=-1)))

    def forward(self, hidden: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        g = self.gate_values(hidden, embeds)  # (B, T, H)
        return g * hidden + (1 - g) * embeds  # (B, T, H)


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm without its own affine parameters; scale and shift come from a condition vector."""

    def __init__(self, hidden_size: int, condition_size: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps, elementwise_affine=False)
        self.modulation = nn.Linear(condition_size, 2 * hidden_size)
        # Start as a plain LayerNorm (gamma = 1, beta = 0) whatever the condition: the talker first learns to
        # speak, then learns how emotion should bend its input.
        nn.init.zeros_(self.modulation.weight)
        with torch.no_grad():
            self.modulation.bias.copy_(torch.cat([torch.ones(hidden_size), torch.zeros(hidden_size)]))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(condition).chunk(2, dim=-1)  # (B, H) each
        return gamma[:, None] * self.norm(x) + beta[:, None]  # (B, T, H)
