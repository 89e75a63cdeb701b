"""EmotionOmniToken2Wav: the local speech-unit vocoder, units -> UnitToMel -> Griffin-Lim -> 16 kHz audio.

It carries its own unit extractor (the k-means centroids, as buffers), so one saved model both turns reply audio
into the units the talker learns from and turns the talker's units back into audio. Implements the Token2Wav
protocol (components/speech/base.py), streaming included.

    token2wav = EmotionOmniToken2Wav(config)            # weights from the model's safetensors
    units = token2wav.extract_units(wave)               # reference audio -> units (training targets)
    audio = token2wav.synthesize(units, emotion)        # (T,) float32, 16 kHz
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.errors import ConfigError
from components.speech.base import ChunkPolicy
from components.speech.config import EmotionOmniToken2WavConfig
from components.speech.mel import GriffinLim, MelSpectrogram
from components.speech.unit2mel import UnitToMel
from components.speech.units import UnitExtractor


class EmotionOmniToken2Wav(nn.Module):
    def __init__(self, config: EmotionOmniToken2WavConfig, chunk_policy: ChunkPolicy = ChunkPolicy()):
        super().__init__()
        config.validate()
        self.config, self.chunk_policy = config, chunk_policy
        self.extractor = UnitExtractor(config.num_units, config.mel.n_mels, config.frames_per_unit)
        self.unit2mel = UnitToMel(config)
        self.mel = MelSpectrogram(config.mel)
        self.vocoder = GriffinLim(config.mel, n_iter=config.griffin_lim_iters)

    @property
    def num_units(self) -> int:
        return self.config.num_units

    @property
    def unit_rate(self) -> float:
        return self.config.unit_rate

    @property
    def samples_per_unit(self) -> int:
        return self.config.frames_per_unit * self.config.mel.hop_length

    def speaker_index(self, speaker: str | None) -> int:
        """Index of a voice in config.speakers; None is the first (the assistant's)."""
        if speaker is None:
            return 0
        try:
            return self.config.speakers.index(speaker)
        except ValueError:
            raise ConfigError(
                f"speaker {speaker!r} is not a voice this token2wav was trained on; use one of {self.config.speakers}"
            ) from None

    def extract_units(self, wave: np.ndarray | torch.Tensor) -> list[int]:
        """A 16 kHz waveform -> its unit ids (25 per second)."""
        return self.extractor(self.mel(wave)).tolist()

    # --- training ---
    def forward(
        self,
        units: torch.Tensor,
        unit_lengths: torch.Tensor,
        emotion: torch.Tensor,
        speaker: torch.Tensor,
        target_mel: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """units (B, N) padded, target_mel (B, n_mels, N*k) of the reference audio -> (mel, masked L1 loss)."""
        k = self.config.frames_per_unit
        padded = torch.where(
            torch.arange(units.shape[1], device=units.device)[None] < unit_lengths[:, None],
            units,
            torch.full_like(units, self.config.num_units),
        )
        base = self.extractor.centroid_mel(padded.clamp(max=self.config.num_units - 1))
        mel = self.unit2mel(padded, base, emotion, speaker)
        if target_mel is None:
            return mel, None
        frames = torch.arange(mel.shape[-1], device=mel.device)[None] < (unit_lengths * k)[:, None]  # (B, T)
        error = (mel - target_mel).abs().mean(1)  # (B, T)
        return mel, (error * frames).sum() / frames.sum().clamp(min=1)

    # --- inference (the Token2Wav protocol) ---
    @torch.no_grad()
    def units_to_mel(self, units: Sequence[int], emotion: torch.Tensor | None, speaker: str | None) -> torch.Tensor:
        """One utterance's units -> log-mel (n_mels, N * frames_per_unit)."""
        device = self.extractor.centroids.device
        ids = torch.tensor([list(units)], dtype=torch.long, device=device)
        emotion = self._emotion(emotion, device)
        speaker_id = torch.tensor([self.speaker_index(speaker)], device=device)
        mel, _ = self.forward(ids, torch.tensor([ids.shape[1]], device=device), emotion, speaker_id)
        return mel[0]

    @torch.no_grad()
    def synthesize(
        self, units: Sequence[int], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> np.ndarray:
        """All units of one utterance -> (N * samples_per_unit,) float32 at 16 kHz; no units -> empty audio."""
        if len(units) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.vocoder(self.units_to_mel(units, emotion, speaker)).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def synthesize_batch(
        self, units: Sequence[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> list[np.ndarray]:
        """Many utterances' units -> their audio, each equal to `synthesize`'s. `emotion`: (B, E) or None.

        UnitToMel runs once over the padded batch (its masks keep padding out of every real frame); Griffin-Lim
        runs per utterance. Measured on the demo model (2 cores, 2026-11-29): Griffin-Lim over a padded batch of 8
        replies took 1.37 s against 0.97 s one by one: on a CPU an FFT costs per frame, and padding adds frames.
        """
        device = self.extractor.centroids.device
        spoken = [i for i, u in enumerate(units) if len(u)]
        audio = [np.zeros(0, dtype=np.float32) for _ in units]
        if not spoken:
            return audio
        ids, lengths = pad_units(
            [torch.tensor(list(units[i]), dtype=torch.long) for i in spoken], self.config.num_units
        )
        rows = (
            torch.zeros(len(spoken), self.config.emotion_dim)
            if emotion is None
            else torch.as_tensor(emotion, dtype=torch.float32).reshape(len(units), -1)[spoken]
        )
        speaker_ids = torch.full((len(spoken),), self.speaker_index(speaker), dtype=torch.long)
        mel, _ = self.forward(ids.to(device), lengths.to(device), rows.to(device), speaker_ids.to(device))
        for row, i in enumerate(spoken):
            frames = int(lengths[row]) * self.config.frames_per_unit
            audio[i] = self.vocoder(mel[row, :, :frames]).cpu().numpy().astype(np.float32)
        return audio

    @torch.no_grad()
    def stream(
        self, unit_chunks: Iterable[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> Iterator[np.ndarray]:
        """Audio chunks as units arrive (ChunkPolicy: first after 15 units, then every 12, 3 of look-ahead).

        The mel of a chunk is final once its look-ahead units are known (UnitToMel looks exactly that far
        ahead). Griffin-Lim runs per chunk over the chunk plus `context` frames on both sides, and consecutive
        chunks are cross-faded over `overlap` frames so their phases meet without a click. The chunks add up to
        exactly the length `synthesize` gives for the same units.
        """
        policy, k = self.chunk_policy, self.config.frames_per_unit
        context, overlap = 4 * k, k  # frames: 4 units of phase context, 1 unit cross-fade
        units: list[int] = []
        emitted = 0  # frames already sent
        tail: np.ndarray | None = None  # the previous chunk's last `overlap` frames, held back
        for chunk in unit_chunks:
            units.extend(int(u) for u in chunk)
            ready = len(units) - policy.lookahead_units  # units whose mel can no longer change
            needed = policy.first_units if emitted == 0 else emitted // k + policy.hop_units
            if ready >= needed:
                out, tail = self._chunk_audio(units, emotion, speaker, emitted, ready * k, context, overlap, tail)
                emitted = ready * k
                yield out
        if units and emitted < len(units) * k:
            out, tail = self._chunk_audio(units, emotion, speaker, emitted, len(units) * k, context, overlap, tail)
            yield out
        if tail is not None and tail.size:
            yield tail

    def _chunk_audio(
        self, units, emotion, speaker, start: int, end: int, context: int, overlap: int, tail: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Audio for frames [start, end), minus its last `overlap` frames (returned as the new tail)."""
        hop = self.config.mel.hop_length
        mel = self.units_to_mel(units, emotion, speaker)  # (n_mels, all frames so far)
        lo, hi = max(0, start - context), min(mel.shape[-1], end + context)
        audio = self.vocoder(mel[:, lo:hi]).cpu().numpy().astype(np.float32)
        begin = (start - lo - (overlap if tail is not None else 0)) * hop
        piece = audio[begin : (end - lo) * hop]
        if tail is not None:  # cross-fade the held-back frames of the previous chunk into this one
            fade = np.linspace(0.0, 1.0, len(tail), dtype=np.float32)
            piece[: len(tail)] = tail * (1 - fade) + piece[: len(tail)] * fade
        cut = max(0, len(piece) - overlap * hop)
        return piece[:cut], piece[cut:]

    def _emotion(self, emotion: torch.Tensor | None, device) -> torch.Tensor:
        if emotion is None:  # no emotion given: the unconditioned voice (FiLM's zero point)
            return torch.zeros(1, self.config.emotion_dim, device=device)
        return torch.as_tensor(emotion, dtype=torch.float32, device=device).reshape(1, -1)


def pad_units(units: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length unit tensors -> (B, N) padded with `pad`, and their lengths."""
    lengths = torch.tensor([len(u) for u in units], dtype=torch.long)
    width = max(int(lengths.max()) if len(units) else 0, 1)
    return torch.stack([F.pad(u, (0, width - len(u)), value=pad) for u in units]), lengths
