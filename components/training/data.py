"""DialogueDataset: manifest rows -> (log-mel, valid frames, reply ids, emotion labels[, reply speech]) for training.

Stage 2 adds the reference reply's speech: its units (from the speech-units step) and its log-mel (the unit ->
mel model's target), cut to the same length: 2 mel frames per unit; and the restyled replies as extra items.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from components.audio.features import LogMelFrontend
from components.audio.io import load_wav
from components.errors import ConfigError
from components.model.configuration import EmotionOmniThinkerConfig
from components.model.tokenizer import encode_response
from components.speech.dataset_units import SpeechUnits
from components.speech.mel import MelSpectrogram
from components.synthesis import read_manifest
from components.synthesis.taxonomy import ASSISTANT_SPEAKER


class DialogueDataset(Dataset):
    """One split of a synthesized dataset. Features are computed once per item and kept in memory:
    the log-mel is the costliest part of a step at tiny scale and does not change between epochs.

    With `speech` (the speech-units step's output), items carry the reply's speech too, and the restyled replies
    follow the dataset's own rows as extra items: the same user turn and reply words, spoken in another emotion,
    which is then the talker's emotion condition (`force_reference_emotion`)."""

    def __init__(
        self,
        rows: list[dict],
        dataset_dir: Path,
        config: EmotionOmniThinkerConfig,
        tokenizer,
        speech: SpeechUnits | None = None,
    ):
        if not rows:
            raise ConfigError(f"no rows to train on in {dataset_dir}: synthesize a larger dataset (--n)")
        missing = [r["id"] for r in rows if speech is not None and r["id"] not in speech.units]
        if missing:
            raise ConfigError(
                f"{len(missing)} rows have no speech units (first: {missing[:3]}): the units were made "
                "for another dataset; run the speech-units step on this one"
            )
        self.rows, self.dataset_dir, self.config, self.tokenizer = rows, Path(dataset_dir), config, tokenizer
        self.frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
        self.speech = speech
        by_id = {r["id"]: r for r in rows}
        self.restyled = [(by_id[r.id], r, units) for r, units in (speech.restyled if speech else []) if r.id in by_id]
        # The local token2wav's unit -> mel model trains on the reply's mel; a CosyVoice2 one is frozen.
        self.speech_mel = MelSpectrogram(speech.config.mel) if speech and speech.config.backend == "local" else None
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rows) + len(self.restyled)

    def __getitem__(self, index: int) -> dict:
        if index not in self._cache:
            restyled = index >= len(self.rows)
            if restyled:
                row, style, units = self.restyled[index - len(self.rows)]
                emotion, reply_wav = style.emotion, self.speech.root / style.wav
            else:
                row = self.rows[index]
                emotion, reply_wav = row["response_emotion"], self.dataset_dir / row["response_wav"]
            features, frames = self.frontend([load_wav(self.dataset_dir / row["user_wav"])])
            item = {
                "input_features": features[0],
                "audio_frames": frames[0],
                "response_ids": torch.tensor(
                    encode_response(self.tokenizer, row["response_text"], self.config.eos_token_id)
                ),
                "user_emotion": self.config.user_emotions.index(row["user_emotion"]),
                "response_emotion": self.config.response_emotions.index(emotion),
            }
            if self.speech is not None:
                speech_units = units if restyled else self.speech.units[row["id"]]
                item["speech_units"] = torch.tensor(speech_units, dtype=torch.long)
                item["force_reference_emotion"] = restyled
            if self.speech_mel is not None:
                mel = self.speech_mel(load_wav(reply_wav))
                item.update(
                    speech_mel=mel[:, : len(item["speech_units"]) * self.speech.config.frames_per_unit],
                    speaker=self.speech.config.speakers.index(ASSISTANT_SPEAKER),
                )
            self._cache[index] = item
        return self._cache[index]


def train_split(
    dataset_dir: Path, config: EmotionOmniThinkerConfig, tokenizer, speech: SpeechUnits | None = None
) -> DialogueDataset:
    """The training rows of the dataset at `dataset_dir`, as the ranks train on them."""
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == "train"]
    return DialogueDataset(rows, dataset_dir, config, tokenizer, speech=speech)


def collate(items: list[dict]) -> dict:
    """Stack fixed-size tensors; replies stay a list (the model pads whole sequences itself); reply speech is
    right-padded, with its lengths."""
    batch = {
        "input_features": torch.stack([x["input_features"] for x in items]),
        "audio_frames": torch.stack([x["audio_frames"] for x in items]),
        "response_ids": [x["response_ids"] for x in items],
        "user_emotion": torch.tensor([x["user_emotion"] for x in items]),
        "response_emotion": torch.tensor([x["response_emotion"] for x in items]),
    }
    if "speech_units" in items[0]:
        lengths = torch.tensor([len(x["speech_units"]) for x in items])
        units = torch.zeros(len(items), max(int(lengths.max()), 1), dtype=torch.long)
        for i, x in enumerate(items):
            units[i, : len(x["speech_units"])] = x["speech_units"]
        batch.update(
            speech_units=units,
            speech_unit_lengths=lengths,
            force_reference_emotion=torch.tensor([x["force_reference_emotion"] for x in items]),
        )
    if "speech_mel" in items[0]:
        # Each item's mel is exactly frames_per_unit frames per unit, so the widest mel is the padded width.
        mel = items[0]["speech_mel"].new_zeros(
            len(items), items[0]["speech_mel"].shape[0], max(x["speech_mel"].shape[1] for x in items)
        )
        for i, x in enumerate(items):
            mel[i, :, : x["speech_mel"].shape[1]] = x["speech_mel"]
        batch.update(speech_mel=mel, speaker=torch.tensor([x["speaker"] for x in items]))
    return batch


def to_device(batch: dict, device: torch.device | str, dtype: torch.dtype | None = None) -> dict:
    """Move a collated batch (tensors and the list of reply tensors) to the engine's device; with `dtype` (bf16
    training: DeepSpeed casts the model, not its inputs) floating-point tensors are cast too."""

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, dtype) if dtype is not None and t.is_floating_point() else t.to(device)

    return {key: [move(t) for t in value] if isinstance(value, list) else move(value) for key, value in batch.items()}
