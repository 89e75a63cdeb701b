"""DialogueDataset: manifest rows -> (log-mel, valid frames, reply ids, emotion labels) for training."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from components.audio.features import LogMelFrontend
from components.audio.io import load_wav
from components.model.configuration import EmotionOmniConfig
from components.model.tokenizer import encode_response


class DialogueDataset(Dataset):
    """One split of a synthesized dataset. Features are computed once per item and kept in memory:
    the log-mel is the costliest part of a step at tiny scale and does not change between epochs."""

    def __init__(self, rows: list[dict], dataset_dir: Path, config: EmotionOmniConfig, tokenizer):
        if not rows:
            raise ValueError(f"no rows to train on in {dataset_dir}: synthesize a larger dataset (--n)")
        self.rows, self.dataset_dir, self.config, self.tokenizer = rows, Path(dataset_dir), config, tokenizer
        self.frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        if index not in self._cache:
            row = self.rows[index]
            features, frames = self.frontend([load_wav(self.dataset_dir / row["user_wav"])])
            self._cache[index] = {
                "input_features": features[0], "audio_frames": frames[0],
                "response_ids": torch.tensor(
                    encode_response(self.tokenizer, row["response_text"], self.config.eos_token_id)),
                "user_emotion": self.config.user_emotions.index(row["user_emotion"]),
                "response_emotion": self.config.response_emotions.index(row["response_emotion"]),
            }
        return self._cache[index]


def collate(items: list[dict]) -> dict:
    """Stack fixed-size tensors; replies stay a list (the model pads whole sequences itself)."""
    return {
        "input_features": torch.stack([x["input_features"] for x in items]),
        "audio_frames": torch.stack([x["audio_frames"] for x in items]),
        "response_ids": [x["response_ids"] for x in items],
        "user_emotion": torch.tensor([x["user_emotion"] for x in items]),
        "response_emotion": torch.tensor([x["response_emotion"] for x in items]),
    }


def to_device(batch: dict, device: torch.device | str) -> dict:
    """Move a collated batch (tensors and the list of reply tensors) to the engine's device."""
    return {key: [t.to(device) for t in value] if isinstance(value, list) else value.to(device)
            for key, value in batch.items()}
