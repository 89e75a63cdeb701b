"""Generalization: the unseen-voice split scored beside the in-distribution test split.

The test split is spoken by the voices the model trained on; contracts.UNSEEN_VOICE_SPLIT only by voices that
spoke no training turn (a whole engine among them). The gap between the two user-emotion accuracies is how much
of the recognition was the voices rather than the emotion. Accuracy per voice and per channel effect says where.

    result = generalization(seen_result, unseen_result, records, manifest_rows)
    result.summary()   # {"unseen_voice_user_emotion_accuracy": 0.87, ..., "unseen_voice_user_emotion_gap": 0.05}
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from components.audio.channels import channel_from_json
from components.contracts import (
    METRIC_CHRF,
    METRIC_NUM_SAMPLES,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_CHRF,
    METRIC_UNSEEN_VOICE_NUM_SAMPLES,
    METRIC_UNSEEN_VOICE_RESPONSE_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_GAP,
    METRIC_UNSEEN_VOICE_USER_EMOTION_MACRO_F1,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
)
from components.evaluation.metrics import EvalResult
from components.evaluation.records import PredictionRecord
from components.evaluation.targets import Targets

# Each unseen-voice metric and the in-distribution metric it sits beside.
UNSEEN_VOICE_METRICS: dict[str, str] = {
    METRIC_UNSEEN_VOICE_NUM_SAMPLES: METRIC_NUM_SAMPLES,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY: METRIC_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_MACRO_F1: METRIC_USER_EMOTION_MACRO_F1,
    METRIC_UNSEEN_VOICE_RESPONSE_EMOTION_ACCURACY: METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_CHRF: METRIC_CHRF,
}

# Issue 9's target for the demo data.
GENERALIZATION_TARGETS: Targets = {METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY: (">=", 0.85)}


@dataclass
class GroupAccuracy:
    """User-emotion accuracy over the held-out turns that share a voice or a channel effect."""

    group: str
    split: str
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


@dataclass
class GeneralizationResult:
    seen: EvalResult  # the in-distribution test split
    unseen: EvalResult  # the unseen-voice split
    by_voice: list[GroupAccuracy] = field(default_factory=list)
    by_channel: list[GroupAccuracy] = field(default_factory=list)  # "clean" and each effect, both splits

    def summary(self) -> dict[str, float]:
        unseen = self.unseen.summary()
        return {
            **{name: unseen[base] for name, base in UNSEEN_VOICE_METRICS.items()},
            METRIC_UNSEEN_VOICE_USER_EMOTION_GAP: self.seen.user_emotion_accuracy - self.unseen.user_emotion_accuracy,
        }

    def to_dict(self) -> dict:
        def rows(groups):
            return [{"group": g.group, "split": g.split, "n": g.n, "accuracy": round(g.accuracy, 4)} for g in groups]

        return {
            "summary": self.summary(),
            "by_voice": rows(self.by_voice),
            "by_channel": rows(self.by_channel),
            "unseen_detail": self.unseen.to_dict(),
        }


def generalization(
    seen: EvalResult, unseen: EvalResult, records: list[PredictionRecord], rows: list[dict]
) -> GeneralizationResult:
    """`records`: the predictions of both splits; `rows`: their manifest rows (voice, split and channel by id)."""
    by_id = {row["id"]: row for row in rows}
    voices: dict[tuple[str, str], list[bool]] = defaultdict(list)
    channels: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for record in records:
        row = by_id[record.id]
        right = record.predicted_user_emotion == record.user_emotion
        voices[(row["speaker"], row["split"])].append(right)
        effects = {e["effect"] for e in channel_from_json(row["user_channel"])} or {"clean"}
        for effect in effects:  # a turn through two effects counts under both
            channels[(effect, row["split"])].append(right)

    def groups(found: dict[tuple[str, str], list[bool]]) -> list[GroupAccuracy]:
        return [GroupAccuracy(group, split, len(hits), sum(hits)) for (group, split), hits in sorted(found.items())]

    return GeneralizationResult(seen, unseen, groups(voices), groups(channels))
