"""Token2Wav: the one interface every speech-unit vocoder implements (units in, 16 kHz audio out).

Two backends sit behind it: the local stand-in trained in the pipeline (`components.speech.token2wav`:
k-means units -> emotion/speaker-conditioned unit-to-mel model -> Griffin-Lim) and CosyVoice2's flow + HiFT
loaded from a local checkpoint directory (`components.speech.cosyvoice2`). The talker predicts units in the
vocabulary of whichever backend the model was trained with (`num_units`).

Audio always comes back as float32 mono at contracts.SAMPLE_RATE, whatever the backend's native rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class ChunkPolicy:
    """When a streaming vocoder may emit audio (the reference's policy, ../shared/stage2-notes.md).

    The first chunk waits for `first_units`; every later chunk advances `hop_units`; `lookahead_units` past a
    chunk's end must be known before it is final, because the vocoder looks that far ahead. The last chunk
    flushes whatever is left when the unit stream ends.
    """

    first_units: int = 15
    hop_units: int = 12
    lookahead_units: int = 3


@runtime_checkable
class Token2Wav(Protocol):
    num_units: int  # size of the unit vocabulary (the talker's codebook), specials excluded
    unit_rate: float  # units per second of audio

    def synthesize(
        self, units: Sequence[int], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> np.ndarray:
        """All units of one utterance -> (T,) float32 at SAMPLE_RATE; empty units -> empty audio."""

    def synthesize_batch(
        self, units: Sequence[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> list[np.ndarray]:
        """Many utterances' units (emotion (B, E) or None) -> each one's audio, as `synthesize` would give it;
        a backend that can batches them (the served batch's vocoding stage)."""

    def stream(
        self, unit_chunks: Iterable[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> Iterator[np.ndarray]:
        """Units arriving in chunks -> audio chunks, per ChunkPolicy; their concatenation is the utterance."""
