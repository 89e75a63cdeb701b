"""Classification scores from a confusion matrix: accuracy, per-class precision/recall/F1, macro-F1.

Plain numpy so the numbers are easy to check by hand: rows are references, columns predictions, and a
score whose denominator is zero (a class never predicted, or never present) is 0 rather than NaN, the
convention scikit-learn's `zero_division=0` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ClassMetrics:
    label: str
    precision: float  # of the utterances predicted as `label`, the fraction that really were
    recall: float  # of the utterances that really were `label`, the fraction predicted as such
    f1: float
    support: int  # how many references carry `label`


def confusion_matrix(references: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts of (reference, prediction) pairs: (L, L) int64, rows and columns in `labels` order.

    Every reference and prediction must be one of `labels`; callers check that first so their error can
    name the offending record.
    """
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for reference, prediction in zip(references, predictions, strict=True):
        matrix[index[reference], index[prediction]] += 1
    return matrix


def accuracy(matrix: np.ndarray) -> float:
    """Fraction of samples on the diagonal."""
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def per_class_metrics(matrix: np.ndarray, labels: Sequence[str]) -> list[ClassMetrics]:
    """Precision, recall, F1 and support for every label, in `labels` order."""
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)  # (L,) column sums: how often each label was predicted
    support = matrix.sum(axis=1)  # (L,) row sums: how often each label is the reference
    precision = _divide(true_positives, predicted)
    recall = _divide(true_positives, support)
    f1 = _divide(2 * precision * recall, precision + recall)
    return [
        ClassMetrics(label, float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i, label in enumerate(labels)
    ]


def macro_f1(classes: Sequence[ClassMetrics]) -> float:
    """Unweighted mean F1 over the labels that occur in the references.

    Labels absent from the references are left out: their F1 is 0 by convention and would punish a test
    split for not covering every class rather than the model for getting classes wrong.
    """
    present = [c.f1 for c in classes if c.support > 0]
    return float(np.mean(present)) if present else 0.0


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
