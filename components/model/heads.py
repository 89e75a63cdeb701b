"""Emotion outputs: the paper's EmotionPredictHead, its loss, and the discrete labels the platform adds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmotionPredictHead(nn.Module):
    """MLP hidden -> hidden/2 -> ReLU -> Dropout -> emotion_dim, on the mean of the first response states."""

    def __init__(self, hidden: int, emotion_dim: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden // 2, emotion_dim)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled)  # (B, hidden) -> (B, emotion_dim)


class UserEmotionClassifier(nn.Module):
    """Discrete user-emotion label from the emotion stream (masked mean over valid frames).

    Not in the paper, whose model never emits labels; product teams and the evaluation want one.
    """

    def __init__(self, dim: int, num_labels: int):
        super().__init__()
        self.linear = nn.Linear(dim, num_labels)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(frames.shape[1], device=frames.device)[None] < valid[:, None]).to(frames.dtype)
        pooled = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.linear(pooled)  # (B, num_labels)


def emotion_codebook(num_emotions: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Fixed orthonormal target vectors, one per response emotion.

    The paper's target is emotion2vec's embedding of the reference reply audio; without emotion2vec we give
    each response emotion a fixed direction so the head still regresses a vector (the paper's vector path)
    and the nearest direction names the emotion.
    """
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, num_emotions, generator=generator))
    return q.T.contiguous()  # (num_emotions, dim), rows orthonormal


def emotion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's emotion loss: 0.6 * MSE + 0.4 * (1 - cosine)."""
    mse = F.mse_loss(pred, target)
    cos = F.cosine_similarity(pred, target, dim=-1).mean()
    return 0.6 * mse + 0.4 * (1.0 - cos)


def nearest_emotion(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the codebook row with the highest cosine similarity to each vector."""
    sims = F.normalize(vectors, dim=-1) @ F.normalize(codebook, dim=-1).T
    return sims.argmax(-1)
