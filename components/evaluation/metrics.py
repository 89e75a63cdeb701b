"""compute_metrics: prediction records in, one EvalResult out.

    result = compute_metrics(records)
    result.summary()   # {"user_emotion_accuracy": 0.81, ..., "latency_p95_ms": 412.0}

`summary()` is the flat scalar view whose keys (contracts.METRIC_*) the KFP Metrics artifact, the MLflow
run and the promotion gate all share; the rest of EvalResult is the detail the report draws.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import CHRF

from components.contracts import (
    METRIC_CHRF,
    METRIC_LATENCY_MEAN_MS,
    METRIC_LATENCY_P50_MS,
    METRIC_LATENCY_P95_MS,
    METRIC_NUM_SAMPLES,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
    RESPONSE_EMOTIONS,
    USER_EMOTIONS,
)
from components.errors import OmniError
from components.evaluation.classification import (
    ClassMetrics,
    accuracy,
    confusion_matrix,
    macro_f1,
    per_class_metrics,
)
from components.evaluation.records import PredictionRecord

# How many offending records an error message lists before summarising the rest as a count.
_MAX_LISTED_ERRORS = 5


class EvaluationError(OmniError, ValueError):
    """Records that cannot be scored. The message names the records and how to fix them."""


@dataclass
class EvalResult:
    n: int
    user_emotion_accuracy: float
    user_emotion_macro_f1: float  # over the USER_EMOTIONS present in the references
    user_emotion_per_class: list[ClassMetrics]  # every USER_EMOTIONS label, in contract order
    user_emotion_confusion: list[list[int]]  # rows: reference, columns: predicted, USER_EMOTIONS order
    response_emotion_accuracy: float
    response_emotion_confusion: list[list[int]]  # rows: reference, columns: predicted, RESPONSE_EMOTIONS order
    chrf: float  # sacrebleu corpus chrF, 0-100
    latency_p50_ms: float
    latency_p95_ms: float
    latency_mean_ms: float
    latencies_ms: list[float]  # per record, kept for the latency histogram
    # The label orders the matrices use, stored so metrics.json describes itself.
    user_emotion_labels: tuple[str, ...] = USER_EMOTIONS
    response_emotion_labels: tuple[str, ...] = RESPONSE_EMOTIONS

    def summary(self) -> dict[str, float]:
        """The scalar metrics under their contract names, for KFP, MLflow and the gate."""
        return {
            METRIC_NUM_SAMPLES: float(self.n),
            METRIC_USER_EMOTION_ACCURACY: self.user_emotion_accuracy,
            METRIC_USER_EMOTION_MACRO_F1: self.user_emotion_macro_f1,
            METRIC_RESPONSE_EMOTION_ACCURACY: self.response_emotion_accuracy,
            METRIC_CHRF: self.chrf,
            METRIC_LATENCY_P50_MS: self.latency_p50_ms,
            METRIC_LATENCY_P95_MS: self.latency_p95_ms,
            METRIC_LATENCY_MEAN_MS: self.latency_mean_ms,
        }

    def to_dict(self) -> dict:
        """Every field as JSON-ready builtins (per-class rows become dicts)."""
        return dataclasses.asdict(self)


def compute_metrics(records: list[PredictionRecord]) -> EvalResult:
    """Score emotion recognition, empathetic emotion choice, reply text and latency over `records`.

    Raises EvaluationError for an empty list, a label outside the contract label sets, or a latency that
    is negative or not finite.
    """
    _validate(records)
    user = confusion_matrix(
        [r.user_emotion for r in records], [r.predicted_user_emotion for r in records], USER_EMOTIONS
    )
    response = confusion_matrix(
        [r.response_emotion for r in records], [r.predicted_response_emotion for r in records], RESPONSE_EMOTIONS
    )
    user_classes = per_class_metrics(user, USER_EMOTIONS)
    chrf = CHRF().corpus_score([r.predicted_text for r in records], [[r.reference_text for r in records]]).score
    latencies_ms = np.array([r.latency_s * 1000.0 for r in records])
    p50, p95 = np.percentile(latencies_ms, [50, 95])
    return EvalResult(
        n=len(records),
        user_emotion_accuracy=accuracy(user),
        user_emotion_macro_f1=macro_f1(user_classes),
        user_emotion_per_class=user_classes,
        user_emotion_confusion=user.tolist(),
        response_emotion_accuracy=accuracy(response),
        response_emotion_confusion=response.tolist(),
        chrf=float(chrf),
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_mean_ms=float(latencies_ms.mean()),
        latencies_ms=latencies_ms.tolist(),
    )


def _validate(records: list[PredictionRecord]) -> None:
    if not records:
        raise EvaluationError(
            "no prediction records to score. Fix: check that the dataset's manifest has rows with "
            "split == 'test' and that the evaluation loop appended a PredictionRecord for each."
        )
    problems = []
    for r in records:
        for name, value, allowed, contract in (
            ("user_emotion", r.user_emotion, USER_EMOTIONS, "USER_EMOTIONS"),
            ("predicted_user_emotion", r.predicted_user_emotion, USER_EMOTIONS, "USER_EMOTIONS"),
            ("response_emotion", r.response_emotion, RESPONSE_EMOTIONS, "RESPONSE_EMOTIONS"),
            ("predicted_response_emotion", r.predicted_response_emotion, RESPONSE_EMOTIONS, "RESPONSE_EMOTIONS"),
        ):
            if value not in allowed:
                problems.append(f"record {r.id!r}: {name}={value!r} is not in contracts.{contract}")
        if not (math.isfinite(r.latency_s) and r.latency_s >= 0):
            problems.append(f"record {r.id!r}: latency_s={r.latency_s!r} is not a finite number >= 0")
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED_ERRORS])
        more = f" (and {len(problems) - _MAX_LISTED_ERRORS} more)" if len(problems) > _MAX_LISTED_ERRORS else ""
        raise EvaluationError(
            f"cannot score {len(records)} records: {listed}{more}. Fix: take labels from "
            "components.contracts (map the model's class indices through USER_EMOTIONS / RESPONSE_EMOTIONS) "
            "and time each reply with time.perf_counter()."
        )
