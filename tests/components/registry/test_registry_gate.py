"""The promotion gate: thresholds, reasons that name metric/value/threshold, and refusal of partial summaries."""
import math
from dataclasses import fields

import pytest

from components.contracts import METRIC_CHRF, METRIC_LATENCY_P95_MS, METRIC_USER_EMOTION_ACCURACY
from components.registry.gate import _RULES, GateConfig, GateError, evaluate_gate

_GOOD = {
    "num_samples": 60.0,
    "user_emotion_accuracy": 0.72,
    "user_emotion_macro_f1": 0.70,
    "response_emotion_accuracy": 0.55,
    "chrf": 41.0,
    "latency_p50_ms": 300.0,
    "latency_p95_ms": 900.0,
    "latency_mean_ms": 350.0,
    "speech_emotion_agreement": 0.6,
    "resynthesis_stoi": 0.75,
}


def test_every_threshold_has_a_rule():
    assert {name for _, name, _, _ in _RULES} == {f.name for f in fields(GateConfig)}


def test_good_model_passes():
    decision = evaluate_gate(_GOOD, GateConfig())
    assert decision.passed and decision.reasons == []


def test_random_model_fails_with_one_reason_per_metric():
    random_guess = {**_GOOD, "user_emotion_accuracy": 1 / 6, "user_emotion_macro_f1": 0.16,
                    "response_emotion_accuracy": 1 / 7, "chrf": 7.0, "latency_p95_ms": 12000.0}
    decision = evaluate_gate(random_guess, GateConfig())
    assert not decision.passed
    assert len(decision.reasons) == 5
    assert "user_emotion_accuracy=0.1667 is below the minimum min_user_emotion_accuracy=0.3" in decision.reasons
    assert "latency_p95_ms=1.2e+04 is above the maximum max_latency_p95_ms=5000" in decision.reasons


def test_nan_fails_instead_of_passing():
    decision = evaluate_gate({**_GOOD, METRIC_CHRF: math.nan}, GateConfig())
    assert decision.reasons == ["chrf=nan is below the minimum min_chrf=15"]


def test_custom_thresholds_apply():
    decision = evaluate_gate(_GOOD, GateConfig(min_user_emotion_accuracy=0.9))
    assert [r.split("=")[0] for r in decision.reasons] == [METRIC_USER_EMOTION_ACCURACY]


def test_missing_metric_is_an_error_not_a_failure():
    partial = {k: v for k, v in _GOOD.items() if k != METRIC_LATENCY_P95_MS}
    with pytest.raises(GateError, match=r"lacks \['latency_p95_ms'\].*EvalResult.summary\(\)"):
        evaluate_gate(partial, GateConfig())


def test_a_speech_metric_that_was_not_computed_fails_with_the_reason():
    silent = {k: v for k, v in _GOOD.items() if k != "speech_emotion_agreement"}  # no reply got audio
    decision = evaluate_gate(silent, GateConfig())
    assert decision.reasons == ["speech_emotion_agreement was not computed (the evaluation report says why), "
                                "so min_speech_emotion_agreement cannot be met"]


def test_none_switches_a_check_off():
    silent = {k: v for k, v in _GOOD.items() if k != "speech_emotion_agreement"}
    assert evaluate_gate(silent, GateConfig(min_speech_emotion_agreement=None)).passed
    lenient = GateConfig(min_chrf=None)
    assert evaluate_gate({**_GOOD, METRIC_CHRF: 1.0}, lenient).passed
