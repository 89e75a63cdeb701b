"""Speech units: k-means over stacked log-mel frames, the local stand-in for CosyVoice2's speech tokenizer.

`frames_per_unit` consecutive mel frames (2 x 20 ms) are stacked into one vector, normalised per dimension and
assigned to the nearest of `num_units` centroids: 25 units per second, CosyVoice2's token rate. Centroids alone
lose prosody (a 77 Hz voice came back near 330 Hz, ../shared/stage2-notes.md), which is why the unit -> mel model
is conditioned on emotion and speaker; they keep enough content for the talker to learn from.

    extractor = fit_unit_extractor(mels, num_units=512)       # mini-batch k-means, seeded
    units = extractor(mel)                                    # (N,) long, N = frames // frames_per_unit
    base = extractor.centroid_mel(units)                      # (n_mels, N * frames_per_unit)

Mini-batch k-means (Sculley 2010) because full k-means does not scale with the data: scipy's kmeans2 took 11
minutes at K=1024 on 2 cores for a few hundred clips; this takes seconds and scales to the paper's 200k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from components.errors import ConfigError


@dataclass(frozen=True)
class KMeansConfig:
    iterations: int = 300  # mini-batches; each centroid sees ~iterations * batch_size / K vectors
    batch_size: int = 4096
    seed: int = 0


class UnitExtractor(nn.Module):
    """Log-mel (n_mels, T) -> unit ids (T // frames_per_unit,). Its buffers are saved with the model."""

    def __init__(self, num_units: int, n_mels: int, frames_per_unit: int):
        super().__init__()
        self.n_mels, self.frames_per_unit = n_mels, frames_per_unit
        dim = n_mels * frames_per_unit
        self.register_buffer("centroids", torch.zeros(num_units, dim))  # normalised space
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @property
    def num_units(self) -> int:
        return self.centroids.shape[0]

    def stack(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(n_mels, T) -> (T // k, n_mels * k): k consecutive frames per row, time-major within a row."""
        k = self.frames_per_unit
        n = log_mel.shape[-1] // k
        return log_mel[:, : n * k].T.reshape(n, k * self.n_mels)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        vectors = (self.stack(log_mel.to(self.centroids)) - self.mean) / self.std
        return _nearest(vectors, self.centroids)

    def centroid_mel(self, units: torch.Tensor) -> torch.Tensor:
        """Unit ids (..., N) -> the centroids as log-mel, (..., n_mels, N * frames_per_unit)."""
        vectors = self.centroids[units] * self.std + self.mean  # (..., N, k * n_mels)
        frames = vectors.reshape(*units.shape[:-1], -1, self.n_mels)  # (..., N * k, n_mels)
        return frames.transpose(-1, -2)


def fit_unit_extractor(
    log_mels: list[torch.Tensor], num_units: int, frames_per_unit: int, config: KMeansConfig = KMeansConfig()
) -> UnitExtractor:
    """Fit mini-batch k-means over the stacked frames of `log_mels` (each (n_mels, T))."""
    if not log_mels:
        raise ConfigError("no audio to fit speech units on: the dataset has no reply audio in its train split")
    extractor = UnitExtractor(num_units, log_mels[0].shape[0], frames_per_unit)
    data = torch.cat([extractor.stack(m.float()) for m in log_mels])  # (V, D)
    if len(data) < num_units:
        raise ConfigError(
            f"{len(data)} stacked frames cannot make {num_units} units: synthesize more dialogues "
            "or lower token2wav num_units"
        )
    mean, std = data.mean(0), data.std(0).clamp(min=1e-3)
    data = (data - mean) / std
    generator = torch.Generator().manual_seed(config.seed)
    centroids = data[torch.randperm(len(data), generator=generator)[:num_units]].clone()
    counts = torch.zeros(num_units)
    for _ in range(config.iterations):
        batch = data[torch.randint(len(data), (min(config.batch_size, len(data)),), generator=generator)]
        assigned = _nearest(batch, centroids)
        batch_counts = torch.bincount(assigned, minlength=num_units).float()
        sums = torch.zeros_like(centroids).index_add_(0, assigned, batch)
        counts += batch_counts
        seen = batch_counts > 0
        # Per-centroid learning rate 1/count: each centroid is the running mean of what it was assigned.
        rate = (batch_counts[seen] / counts[seen])[:, None]
        centroids[seen] = (1 - rate) * centroids[seen] + rate * sums[seen] / batch_counts[seen][:, None]
    # Centroids nothing was ever assigned to restart on random vectors, so no unit id is dead.
    dead = counts == 0
    if dead.any():
        centroids[dead] = data[torch.randint(len(data), (int(dead.sum()),), generator=generator)]
    extractor.centroids.copy_(centroids)
    extractor.mean.copy_(mean)
    extractor.std.copy_(std)
    return extractor


def _nearest(vectors: torch.Tensor, centroids: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Index of the nearest centroid for each row, in chunks so memory stays O(chunk * K)."""
    out = [torch.cdist(vectors[i : i + chunk], centroids).argmin(1) for i in range(0, len(vectors), chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
