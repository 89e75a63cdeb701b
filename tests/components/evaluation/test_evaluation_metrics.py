"""compute_metrics against numbers worked out by hand."""

import math

import numpy as np
import pytest

from components.contracts import (
    METRIC_CHRF,
    METRIC_LATENCY_MEAN_MS,
    METRIC_LATENCY_P50_MS,
    METRIC_LATENCY_P95_MS,
    METRIC_NUM_SAMPLES,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
    USER_EMOTIONS,
)
from components.evaluation import EvaluationError, PredictionRecord, compute_metrics

# (user ref, user pred, response ref, response pred, latency s)
_ROWS = [
    ("neutral", "neutral", "neutral", "neutral", 0.1),
    ("neutral", "happy", "cheerful", "cheerful", 0.2),
    ("happy", "happy", "cheerful", "excited", 0.3),
    ("happy", "happy", "excited", "excited", 0.4),
    ("sad", "sad", "comforting", "comforting", 0.5),
    ("angry", "sad", "apologetic", "calm", 0.6),
]


def _records(predicted_text=None):
    return [
        PredictionRecord(
            id=f"{i:06d}",
            user_emotion=u,
            predicted_user_emotion=pu,
            response_emotion=r,
            predicted_response_emotion=pr,
            reference_text=f"I hear you, reply number {i}.",
            predicted_text=predicted_text or f"I hear you, reply number {i}.",
            latency_s=lat,
        )
        for i, (u, pu, r, pr, lat) in enumerate(_ROWS)
    ]


def test_scores_match_hand_computation():
    result = compute_metrics(_records())

    assert result.n == 6
    assert result.user_emotion_accuracy == pytest.approx(4 / 6)
    assert result.response_emotion_accuracy == pytest.approx(4 / 6)
    # neutral P=1 R=1/2 F1=2/3; happy P=2/3 R=1 F1=4/5; sad P=1/2 R=1 F1=2/3; angry never predicted F1=0.
    # fearful and surprised are absent from the references, so macro-F1 averages the four present labels.
    assert result.user_emotion_macro_f1 == pytest.approx((2 / 3 + 4 / 5 + 2 / 3 + 0) / 4)
    by_label = {c.label: c for c in result.user_emotion_per_class}
    assert [c.label for c in result.user_emotion_per_class] == list(USER_EMOTIONS)
    assert (by_label["happy"].precision, by_label["happy"].recall, by_label["happy"].support) == (
        pytest.approx(2 / 3),
        1.0,
        2,
    )
    assert (by_label["angry"].precision, by_label["angry"].f1) == (0.0, 0.0)
    assert by_label["fearful"].support == 0

    # Rows: reference, columns: predicted, both in USER_EMOTIONS order (neutral happy sad angry fearful surprised).
    assert result.user_emotion_confusion == [
        [1, 1, 0, 0, 0, 0],
        [0, 2, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    response = np.array(result.response_emotion_confusion)
    assert response.shape == (7, 7) and response.sum() == 6 and np.trace(response) == 4

    assert result.latency_p50_ms == pytest.approx(350.0)
    assert result.latency_p95_ms == pytest.approx(575.0)  # linear interpolation: 500 + 0.75 * 100
    assert result.latency_mean_ms == pytest.approx(350.0)


def test_chrf_is_100_for_identical_text_and_lower_otherwise():
    assert compute_metrics(_records()).chrf == pytest.approx(100.0)
    assert 0.0 < compute_metrics(_records(predicted_text="I hear you.")).chrf < 60.0


def test_summary_uses_contract_keys():
    summary = compute_metrics(_records()).summary()
    assert set(summary) == {
        METRIC_NUM_SAMPLES,
        METRIC_USER_EMOTION_ACCURACY,
        METRIC_USER_EMOTION_MACRO_F1,
        METRIC_RESPONSE_EMOTION_ACCURACY,
        METRIC_CHRF,
        METRIC_LATENCY_P50_MS,
        METRIC_LATENCY_P95_MS,
        METRIC_LATENCY_MEAN_MS,
    }
    assert all(isinstance(v, float) and math.isfinite(v) for v in summary.values())


def test_empty_records_are_refused():
    with pytest.raises(EvaluationError, match="no prediction records.*split == 'test'"):
        compute_metrics([])


def test_bad_labels_and_latency_name_the_record():
    records = _records()
    records[2].predicted_user_emotion = "joyful"
    records[4].latency_s = float("nan")
    with pytest.raises(EvaluationError) as error:
        compute_metrics(records)
    message = str(error.value)
    assert "record '000002': predicted_user_emotion='joyful' is not in contracts.USER_EMOTIONS" in message
    assert "record '000004': latency_s=nan" in message
