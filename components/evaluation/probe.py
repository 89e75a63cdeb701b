"""The user-emotion probe: the model's user-emotion path alone, trained in about a minute, to judge a dataset.

The thinker hears the user's emotion only through EmotionEncoder -> UserEmotionClassifier (a masked mean over its
frames, then a linear layer). Trained alone, with stage 1's SpecAugment, learning rate, schedule and global batch,
that path reaches about what stage 1 reaches on the same data: on the demo's 480-dialogue set 0.85 on the test split
and 0.63 on the unseen-voice split (48 turns each), against 0.83 and 0.67 from the whole pipeline (2026-11-29,
2-core EPYC). It takes about a minute, not the demo's ten, so a change to the data (voices, channels, how many
dialogues) can be judged on how it generalizes before a whole run:

    result = probe_user_emotion([Path("data/ds")], Path("data/ds_eval"), ProbeConfig(train_turns=384))
    result.accuracy  # {"test": 0.76, "test_unseen_voice": 0.64}

Features are computed once per clip (LogMelFrontend, as in training); the encoder is the model's own class, sized
by the thinker's config.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from components.audio.features import ENCODER_STRIDE, LogMelFrontend
from components.audio.io import load_wav
from components.contracts import UNSEEN_VOICE_SPLIT, USER_EMOTIONS
from components.errors import ConfigError
from components.evaluation.classification import accuracy, confusion_matrix
from components.model.configuration import EmotionOmniThinkerConfig
from components.model.emotion_encoder import EmotionEncoder
from components.model.heads import UserEmotionClassifier
from components.model.spec_augment import spec_augment
from components.synthesis import read_manifest
from components.training.config import TrainConfig
from components.training.schedule import lr_schedule

EVAL_SPLITS = ("test", UNSEEN_VOICE_SPLIT)


@dataclass
class ProbeConfig:
    epochs: int = TrainConfig.epochs
    batch_size: int = 16  # the demo's global batch: 2 ranks x micro batch 8
    lr: float = TrainConfig.lr_modules
    weight_decay: float = TrainConfig.weight_decay
    warmup_ratio: float = TrainConfig.warmup_ratio
    train_turns: int = 0  # > 0: only the first N training turns of the train datasets
    seed: int = 0
    thinker: EmotionOmniThinkerConfig = field(default_factory=EmotionOmniThinkerConfig)  # encoder size, SpecAugment

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.train_turns < 0:
            raise ConfigError(
                f"ProbeConfig: epochs={self.epochs} and batch_size={self.batch_size} must be >= 1 and "
                f"train_turns={self.train_turns} >= 0 (0: all)"
            )


@dataclass
class ProbeResult:
    train_turns: int
    accuracy: dict[str, float]  # eval split -> user-emotion accuracy
    by_voice: dict[str, dict[str, float]]  # eval split -> speaker -> accuracy
    confusion: dict[str, list[list[int]]]  # eval split -> (reference x prediction) counts, USER_EMOTIONS order
    samples: dict[str, int]  # eval split -> turns scored
    seconds: float

    def table(self) -> str:
        lines = [
            f"user-emotion probe: {self.train_turns} training turns, {self.seconds:.0f} s",
            f"{'split':20s} {'turns':>6s} {'accuracy':>9s}",
        ]
        lines += [f"{split:20s} {self.samples[split]:6d} {self.accuracy[split]:9.3f}" for split in self.accuracy]
        for split, voices in self.by_voice.items():
            lines.append(f"{split} by voice: " + ", ".join(f"{v} {a:.2f}" for v, a in voices.items()))
        return "\n".join(lines)


def probe_user_emotion(
    train_dirs: list[Path], eval_dir: Path, config: ProbeConfig = ProbeConfig(), progress: bool = True
) -> ProbeResult:
    """Train the user-emotion path on the train split of `train_dirs` (in order, cut to config.train_turns) and
    score it on the test and unseen-voice splits of `eval_dir` (which may be one of `train_dirs`)."""
    started = time.perf_counter()
    c = config.thinker
    frontend = LogMelFrontend(c.n_mels, c.window_seconds, c.stack_factor)
    train_rows = [(Path(d), r) for d in train_dirs for r in read_manifest(Path(d)) if r["split"] == "train"]
    if config.train_turns:
        train_rows = train_rows[: config.train_turns]
    if not train_rows:
        raise ConfigError(f"no training turns in {[str(d) for d in train_dirs]}: probe datasets with a train split")
    eval_rows = {
        split: [(Path(eval_dir), r) for r in read_manifest(Path(eval_dir)) if r["split"] == split]
        for split in EVAL_SPLITS
    }
    eval_rows = {split: rows for split, rows in eval_rows.items() if rows}
    if not eval_rows:
        raise ConfigError(f"{eval_dir} has no {' or '.join(EVAL_SPLITS)} split to score the probe on")

    torch.manual_seed(config.seed)
    x, frames, y = _features(frontend, train_rows, progress)
    encoder = EmotionEncoder(
        c.n_mels, c.emotion_encoder_dim, c.emotion_encoder_layers, c.encoder_frames, c.emotion_encoder_dropout
    )
    classifier = UserEmotionClassifier(c.emotion_encoder_dim, len(USER_EMOTIONS))
    parameters = [*encoder.parameters(), *classifier.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(y) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_schedule(config.epochs * steps_per_epoch, config.warmup_ratio)
    )
    # Valid frames count 10 Hz adapter frames; SpecAugment masks mel frames.
    mel_frames_per_frame = c.stack_factor * ENCODER_STRIDE

    def logits(batch_x: torch.Tensor, batch_frames: torch.Tensor) -> torch.Tensor:
        return classifier(encoder(batch_x), batch_frames * c.stack_factor)

    encoder.train(), classifier.train()
    for _ in tqdm(range(config.epochs), desc="probe: training", unit="epoch", disable=not progress):
        for batch in torch.randperm(len(y)).split(config.batch_size):
            batch_x = spec_augment(
                x[batch],
                frames[batch] * mel_frames_per_frame,
                freq_masks=c.spec_freq_masks,
                freq_width=c.spec_freq_width,
                time_masks=c.spec_time_masks,
                time_width=c.spec_time_width,
            )
            loss = F.cross_entropy(logits(batch_x, frames[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()

    encoder.eval(), classifier.eval()
    result = ProbeResult(train_turns=len(y), accuracy={}, by_voice={}, confusion={}, samples={}, seconds=0.0)
    for split, rows in eval_rows.items():
        ex, eframes, _ = _features(frontend, rows, progress)
        with torch.no_grad():
            predicted = torch.cat(
                [logits(ex[i : i + 64], eframes[i : i + 64]).argmax(-1) for i in range(0, len(rows), 64)]
            )
        references = [r["user_emotion"] for _, r in rows]
        predictions = [USER_EMOTIONS[int(p)] for p in predicted]
        matrix = confusion_matrix(references, predictions, USER_EMOTIONS)
        hits = defaultdict(list)
        for (_, row), ref, pred in zip(rows, references, predictions):
            hits[row["speaker"]].append(ref == pred)
        result.accuracy[split] = round(accuracy(matrix), 4)
        result.confusion[split] = matrix.tolist()
        result.by_voice[split] = {voice: round(sum(h) / len(h), 4) for voice, h in sorted(hits.items())}
        result.samples[split] = len(rows)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def _features(
    frontend: LogMelFrontend, rows: list[tuple[Path, dict]], progress: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-mel, valid frames and user-emotion labels of (dataset dir, manifest row) pairs, in batches."""
    xs, frames = [], []
    for i in tqdm(range(0, len(rows), 32), desc="probe: log-mel", unit="batch", disable=not progress):
        x, f = frontend([load_wav(root / row["user_wav"]) for root, row in rows[i : i + 32]])
        xs.append(x)
        frames.append(f)
    labels = torch.tensor([USER_EMOTIONS.index(row["user_emotion"]) for _, row in rows])
    return torch.cat(xs), torch.cat(frames), labels
