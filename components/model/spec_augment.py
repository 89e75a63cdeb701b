"""SpecAugment (Park et al., 2019) on the log-mel a thinker hears, in training only.

A few hundred synthesized turns are memorised within a few epochs (the user-emotion loss reaches ~0 by epoch 10
of 30), and what is memorised includes the voices. Masking random mel bands and time spans each step hides a
different part of every turn, so the emotion has to be heard in what is left: its rate, its contour and its
energy, spread over the whole turn. The speech encoder hears the same masked input, as in Whisper's fine-tuning.
"""

from __future__ import annotations

import torch


def spec_augment(
    features: torch.Tensor,
    valid_mel_frames: torch.Tensor,
    *,
    freq_masks: int,
    freq_width: int,
    time_masks: int,
    time_width: int,
) -> torch.Tensor:
    """(B, n_mels, T_mel) log-mel -> a copy with `freq_masks` bands of up to `freq_width` bins and `time_masks`
    spans of up to `time_width` frames (inside each item's valid frames) set to the item's mean."""
    out = features.clone()
    batch, n_mels, _ = features.shape
    for i in range(batch):
        fill = features[i].mean()
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, ()))
            start = int(torch.randint(0, max(1, n_mels - width), ()))
            out[i, start : start + width] = fill
        valid = int(valid_mel_frames[i])
        for _ in range(time_masks):
            width = min(int(torch.randint(0, time_width + 1, ())), valid // 5)  # never more than a fifth each
            start = int(torch.randint(0, max(1, valid - width), ()))
            out[i, :, start : start + width] = fill
    return out
