"""Evaluation: prediction records -> metrics (EvalResult.summary() keys are contracts.METRIC_*) -> report files."""
from components.evaluation.classification import ClassMetrics
from components.evaluation.metrics import EvalResult, EvaluationError, compute_metrics
from components.evaluation.records import PredictionRecord
from components.evaluation.report import ReportPaths, write_report

__all__ = [
    "ClassMetrics", "EvalResult", "EvaluationError", "PredictionRecord", "ReportPaths", "compute_metrics",
    "write_report",
]
