"""Evaluation: prediction records -> metrics (EvalResult.summary() keys are contracts.METRIC_*) -> report files.

The names below load on first use (PEP 562), as in components.training: the registry step imports the report's
renderer and the split fingerprint, and must not load matplotlib, the model and torch with them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClassMetrics": "components.evaluation.classification",
    "EvalResult": "components.evaluation.metrics",
    "EvaluationError": "components.evaluation.metrics",
    "compute_metrics": "components.evaluation.metrics",
    "PredictionRecord": "components.evaluation.records",
    "ReportPaths": "components.evaluation.report",
    "write_report": "components.evaluation.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'components.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
