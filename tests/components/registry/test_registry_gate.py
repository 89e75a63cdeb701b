"""The promotion gate: thresholds, reasons that name metric/value/threshold, and refusal of partial summaries."""

import math
from dataclasses import fields

import pytest

from components.contracts import METRIC_CHRF, METRIC_LATENCY_P95_MS, METRIC_USER_EMOTION_ACCURACY
from components.registry.gate import _RULES, ChampionMetrics, GateConfig, GateDecision, GateError, evaluate_gate

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
    "relevance_user": 0.35,
}


def test_every_threshold_has_a_rule():
    floors = {f.name for f in fields(GateConfig)} - {"tolerances", "compare_with_champion"}
    assert {name for _, name, _, _ in _RULES} == floors


def test_good_model_passes():
    decision = evaluate_gate(_GOOD, GateConfig())
    assert decision.passed and decision.reasons == []


def test_random_model_fails_with_one_reason_per_metric():
    random_guess = {
        **_GOOD,
        "user_emotion_accuracy": 1 / 6,
        "user_emotion_macro_f1": 0.16,
        "response_emotion_accuracy": 1 / 7,
        "chrf": 7.0,
        "latency_p95_ms": 12000.0,
    }
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
    assert decision.reasons == [
        "speech_emotion_agreement was not computed (the evaluation report says why), "
        "so min_speech_emotion_agreement cannot be met"
    ]


def test_none_switches_a_check_off():
    silent = {k: v for k, v in _GOOD.items() if k != "speech_emotion_agreement"}
    assert evaluate_gate(silent, GateConfig(min_speech_emotion_agreement=None)).passed
    lenient = GateConfig(min_chrf=None)
    assert evaluate_gate({**_GOOD, METRIC_CHRF: 1.0}, lenient).passed


# --- the champion rule ---------------------------------------------------------------------------------------------


def _champion(**changes) -> ChampionMetrics:
    return ChampionMetrics("3", {**_GOOD, **changes})


def test_worse_challenger_is_not_promoted_and_the_reason_names_the_metric():
    champion = _champion(user_emotion_accuracy=_GOOD["user_emotion_accuracy"] + 0.10)
    decision = evaluate_gate(_GOOD, GateConfig(), champion=champion)
    assert decision.floors_passed and not decision.passed
    assert decision.champion_version == "3"
    assert len(decision.reasons) == 1 and "worse than champion v3" in decision.reasons[0]
    assert "user_emotion_accuracy" in decision.reasons[0]
    worse = [c for c in decision.comparisons if c.verdict == "worse"]
    assert [c.metric for c in worse] == ["user_emotion_accuracy"] and worse[0].diff == pytest.approx(-0.10)


def test_better_challenger_is_promoted():
    champion = _champion(user_emotion_accuracy=_GOOD["user_emotion_accuracy"] - 0.10, chrf=_GOOD["chrf"] - 5)
    decision = evaluate_gate(_GOOD, GateConfig(), champion=champion)
    assert decision.passed
    verdicts = {c.metric: c.verdict for c in decision.comparisons}
    assert verdicts["user_emotion_accuracy"] == "better" and verdicts["chrf"] == "better"


def test_a_difference_within_the_tolerance_is_a_tie_and_a_tie_promotes():
    # 0.015 worse on accuracy (tolerance 0.02) and 0.9 chrF worse (tolerance 1.0): noise, so the newer model wins.
    champion = _champion(user_emotion_accuracy=_GOOD["user_emotion_accuracy"] + 0.015, chrf=_GOOD["chrf"] + 0.9)
    decision = evaluate_gate(_GOOD, GateConfig(), champion=champion)
    assert decision.passed
    ties = {c.metric for c in decision.comparisons if c.verdict == "tie"}
    assert {"user_emotion_accuracy", "chrf"} <= ties
    # ... and just past the tolerance it is worse.
    assert not evaluate_gate(_GOOD, GateConfig(), champion=_champion(chrf=_GOOD["chrf"] + 1.1)).passed


def test_latency_tolerance_is_relative_and_lower_is_better():
    slow = {**_GOOD, "latency_p95_ms": _GOOD["latency_p95_ms"] * 1.4}  # 40 % slower: within 50 %
    assert evaluate_gate(slow, GateConfig(), champion=_champion()).passed
    slower = {**_GOOD, "latency_p95_ms": _GOOD["latency_p95_ms"] * 1.6}
    decision = evaluate_gate(slower, GateConfig(), champion=_champion())
    assert not decision.passed and "latency_p95_ms" in decision.reasons[0]


def test_tolerances_are_configurable_and_a_metric_can_be_left_out():
    champion = _champion(chrf=_GOOD["chrf"] + 3)
    assert not evaluate_gate(_GOOD, GateConfig(), champion=champion).passed
    assert evaluate_gate(_GOOD, GateConfig(tolerances={"chrf": 5.0}), champion=champion).passed
    decision = evaluate_gate(_GOOD, GateConfig(tolerances={"chrf": None}), champion=champion)
    assert decision.passed and "chrf" not in {c.metric for c in decision.comparisons}
    assert evaluate_gate(_GOOD, GateConfig(compare_with_champion=False), champion=champion).passed
    with pytest.raises(GateError, match="does not compare"):
        GateConfig(tolerances={"bleu": 1.0})
    with pytest.raises(GateError, match=">= 0"):
        GateConfig(tolerances={"chrf": -1.0})
    with pytest.raises(GateError, match=r"\{'chrf': '2'\} must be finite numbers"):
        GateConfig(tolerances={"chrf": "2"})  # as a hand-written --gate JSON might say it


def test_a_metric_only_one_side_has_is_not_compared_and_decides_nothing():
    challenger = {**_GOOD, "empathy_score": 2.0}  # the judge ran for the challenger only
    decision = evaluate_gate(challenger, GateConfig(), champion=_champion())
    assert decision.passed
    [empathy] = [c for c in decision.comparisons if c.metric == "empathy_score"]
    assert empathy.verdict == "not compared" and "champion has no value" in empathy.line()


def test_a_failed_floor_and_a_worse_metric_are_both_reported():
    bad = {**_GOOD, "chrf": 1.0}
    decision = evaluate_gate(bad, GateConfig(), champion=_champion())
    assert not decision.floors_passed and len(decision.reasons) == 2
    assert GateDecision.from_dict(decision.to_dict()) == decision


def test_nan_challenger_metric_is_worse_than_any_champion():
    decision = evaluate_gate(
        {**_GOOD, "relevance_user": float("nan")}, GateConfig(), champion=_champion(relevance_user=0.3)
    )
    assert not decision.passed and "relevance_user" in decision.reasons[0]
