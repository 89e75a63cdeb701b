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
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
)


class GateError(ValueError):
    """A summary the gate cannot judge. The message names the missing metrics and how to fix it."""


@dataclass
class GateConfig:
    # Chance is 1/6 ~ 0.17 for six balanced user emotions; 0.3 needs real signal from the audio.
    min_user_emotion_accuracy: float = 0.30
    # Macro-F1 stops a model from passing by predicting only the commonest emotion.
    min_user_emotion_macro_f1: float = 0.25
    # Chance is 1/7 ~ 0.14; the synthetic data's sampled replies cap the best possible at ~0.74 (EMPATHY_MAP).
    min_response_emotion_accuracy: float = 0.30
    # An untrained model's repeated or random tokens score under ~8 chrF and empty replies 0, while a
    # fluent reply in the wrong template still scores ~16: a low bar that only says "it learned to talk".
    min_chrf: float = 15.0
    # Whole reply (recognition + text + speech) on a CPU; catches runaway generation that never stops early.
    max_latency_p95_ms: float = 5000.0


# (summary key, GateConfig field, whether the value must be at least (True) or at most (False) the threshold)
_RULES: tuple[tuple[str, str, bool], ...] = (
    (METRIC_USER_EMOTION_ACCURACY, "min_user_emotion_accuracy", True),
    (METRIC_USER_EMOTION_MACRO_F1, "min_user_emotion_macro_f1", True),
    (METRIC_RESPONSE_EMOTION_ACCURACY, "min_response_emotion_accuracy", True),
    (METRIC_CHRF, "min_chrf", True),
    (METRIC_LATENCY_P95_MS, "max_latency_p95_ms", False),
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
    missing = [key for key, _, _ in _RULES if key not in summary]
    if missing:
        raise GateError(
            f"the evaluation summary lacks {missing} (it has {sorted(summary)}). Fix: pass "
            "EvalResult.summary() from components.evaluation, or the 'summary' object of its metrics.json.")
    reasons = []
    for key, name, at_least in _RULES:
        value, threshold = float(summary[key]), getattr(gate, name)
        # isfinite first: NaN compares False both ways, and a broken metric must fail the gate, not pass it.
        ok = math.isfinite(value) and (value >= threshold if at_least else value <= threshold)
        if not ok:
            relation = "below the minimum" if at_least else "above the maximum"
            reasons.append(f"{key}={value:.4g} is {relation} {name}={threshold:g}")
    return GateDecision(passed=not reasons, reasons=reasons)
