"""The promotion gate: an evaluation summary either clears every threshold or names what it missed.

    decision = evaluate_gate(result.summary(), GateConfig())
    if decision.passed:
        promote(registry_config, version.version)
    else:
        print("\\n".join(decision.reasons))

The defaults suit the tiny CPU model the local pipeline trains for a few minutes on a few hundred synthetic
dialogues: high enough that an untrained or random model fails (six user emotions -> 1/6 accuracy by
chance), low enough that a model that learned anything passes. Production should raise them to just
under the current champion's scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from components.contracts import (
    METRIC_CHRF,
    METRIC_LATENCY_P95_MS,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_RESYNTHESIS_STOI,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
)


class GateError(ValueError):
    """A summary the gate cannot judge. The message names the missing metrics and how to fix it."""


@dataclass
class GateConfig:
    """Thresholds; None switches a check off (e.g. the speech checks, for a run whose model cannot speak yet)."""

    # Chance is 1/6 ~ 0.17 for six balanced user emotions; 0.3 needs real signal from the audio.
    min_user_emotion_accuracy: float | None = 0.30
    # Macro-F1 stops a model from passing by predicting only the commonest emotion.
    min_user_emotion_macro_f1: float | None = 0.25
    # Chance is 1/7 ~ 0.14; the synthetic data's sampled replies cap the best possible at ~0.74 (EMPATHY_MAP).
    min_response_emotion_accuracy: float | None = 0.30
    # An untrained model's repeated or random tokens score under ~8 chrF and empty replies 0, while a
    # fluent reply in the wrong template still scores ~16: a low bar that only says "it learned to talk".
    min_chrf: float | None = 15.0
    # Reply text on a CPU, one utterance at a time; catches runaway generation that never stops early.
    max_latency_p95_ms: float | None = 5000.0
    # Does the model's voice carry the emotion it chose? Chance is 1/7 ~ 0.14 for the judge's seven emotions.
    min_speech_emotion_agreement: float | None = 0.30
    # The token2wav must keep speech intelligible (reference units resynthesised); k-means centroids alone
    # reach ~0.7 on the demo data, so under 0.5 the vocoder is broken.
    min_resynthesis_stoi: float | None = 0.50


# (summary key, GateConfig field, whether the value must be at least (True) or at most (False) the threshold,
#  whether the evaluation may legitimately leave the metric out as "not computed": then the check fails with
#  that reason, while a missing text metric means a wrong summary was passed and is an error)
_RULES: tuple[tuple[str, str, bool, bool], ...] = (
    (METRIC_USER_EMOTION_ACCURACY, "min_user_emotion_accuracy", True, False),
    (METRIC_USER_EMOTION_MACRO_F1, "min_user_emotion_macro_f1", True, False),
    (METRIC_RESPONSE_EMOTION_ACCURACY, "min_response_emotion_accuracy", True, False),
    (METRIC_CHRF, "min_chrf", True, False),
    (METRIC_LATENCY_P95_MS, "max_latency_p95_ms", False, False),
    (METRIC_SPEECH_EMOTION_AGREEMENT, "min_speech_emotion_agreement", True, True),  # no reply spoke: none
    (METRIC_RESYNTHESIS_STOI, "min_resynthesis_stoi", True, True),
)


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # one line per failed metric; empty when passed


def evaluate_gate(summary: dict[str, float], gate: GateConfig) -> GateDecision:
    """Check every threshold in `gate` against `summary` (EvalResult.summary() keys).

    A NaN or infinite value fails its check rather than slipping through a comparison. Raises GateError
    when the summary lacks a metric the gate needs.
    """
    missing = [key for key, name, _, optional in _RULES
               if key not in summary and not optional and getattr(gate, name) is not None]
    if missing:
        raise GateError(
            f"the evaluation summary lacks {missing} (it has {sorted(summary)}). Fix: pass "
            "EvalResult.summary() from components.evaluation, or the 'summary' object of its metrics.json.")
    reasons = []
    for key, name, at_least, _ in _RULES:
        threshold = getattr(gate, name)
        if threshold is None:  # this check is switched off
            continue
        if key not in summary:
            reasons.append(f"{key} was not computed (the evaluation report says why), so {name} cannot be met")
            continue
        value = float(summary[key])
        # isfinite first: NaN compares False both ways, and a broken metric must fail the gate, not pass it.
        ok = math.isfinite(value) and (value >= threshold if at_least else value <= threshold)
        if not ok:
            relation = "below the minimum" if at_least else "above the maximum"
            reasons.append(f"{key}={value:.4g} is {relation} {name}={threshold:g}")
    return GateDecision(passed=not reasons, reasons=reasons)
