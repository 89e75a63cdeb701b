"""FrameStackAdapter: the paper's bridge from 50 Hz encoder frames to 10 Hz LLM embeddings."""

from __future__ import annotations

import torch
from torch import nn


class FrameStackAdapter(nn.Module):
    """Stack k consecutive frames, then Linear(dim*k -> hidden) -> ReLU -> Linear(hidden -> llm_hidden).

    Stacking cuts the sequence the LLM attends over by k (1500 -> 300 positions for 30 s in the paper).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, stack_factor: int):
        super().__init__()
        self.stack_factor = stack_factor
        self.proj = nn.Sequential(nn.Linear(in_dim * stack_factor, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, d = frames.shape  # (B, T, D) at 50 Hz
        k = self.stack_factor
        if t % k:  # pad the tail with zeros so the last partial group still forms a frame
            frames = torch.nn.functional.pad(frames, (0, 0, 0, k - t % k))
            t = frames.shape[1]
        return self.proj(frames.reshape(b, t // k, d * k))  # (B, T/k, out_dim) at 10 Hz


def interleave(speech: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    """(B, T, H) x 2 -> (B, 2T, H): even positions speech, odd positions emotion (the reference code's fusion)."""
    if speech.shape != emotion.shape:
        raise ValueError(f"speech {tuple(speech.shape)} and emotion {tuple(emotion.shape)} streams must match")
    b, t, h = speech.shape
    return torch.stack((speech, emotion), dim=2).reshape(b, 2 * t, h)
