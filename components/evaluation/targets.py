"""Targets the issues set for the demo data, checked against an evaluation summary and printed, met or not.

A target is not a gate: a missed target is reported beside its figure, while the gate (components.registry.gate)
decides promotion. Each evaluation part keeps its own targets (speech_eval.SPEECH_TARGETS,
generalization.GENERALIZATION_TARGETS); check them together with `check_targets(summary, {**a, **b})`.
"""

from __future__ import annotations

from dataclasses import dataclass

Targets = dict[str, tuple[str, float]]  # metric -> (">=" or "<=", goal)


@dataclass
class TargetCheck:
    metric: str
    op: str
    target: float
    value: float | None
    met: bool | None  # None when the metric was not computed

    @property
    def status(self) -> str:
        return "not computed" if self.met is None else ("met" if self.met else "missed")

    def line(self) -> str:
        """One line for logs and summaries, e.g. "resynthesis_stoi >= 0.7: 0.766 (met)"."""
        value = "-" if self.value is None else f"{self.value:.3g}"
        return f"{self.metric} {self.op} {self.target:g}: {value} ({self.status})"


def check_targets(summary: dict[str, float], targets: Targets) -> list[TargetCheck]:
    """`targets` against an evaluation summary (a metric absent from it was not computed)."""
    checks = []
    for name, (op, goal) in targets.items():
        value = summary.get(name)
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        checks.append(TargetCheck(name, op, goal, value, met))
    return checks
