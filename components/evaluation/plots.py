"""PNG figures for the evaluation report: emotion confusion matrices and the latency histogram.

Built in the platform's one plotting style (components/plotting.py: matplotlib's object API, never `pyplot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.plotting import new_figure, save_figure

# Row fraction above which a cell is dark enough that its count is written in white.
_DARK_CELL = 0.5


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, *, title: str) -> Path:
    """Write a confusion matrix PNG to `path` and return it.

    Cells show raw counts; colour is the row-normalised fraction, so a rare class that is always confused
    looks as bad as a common one. Rows (references) are labelled with their support.
    """
    counts = np.asarray(matrix, dtype=np.int64)  # (L, L) rows: reference, columns: predicted
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(
            f"confusion matrix has shape {counts.shape} but there are {len(labels)} labels. "
            "Fix: pass the label tuple the matrix was built with."
        )
    support = counts.sum(axis=1, keepdims=True)  # (L, 1)
    fractions = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)

    side = 1.2 + 0.8 * len(labels)  # inches; grows with the label count so annotations never overlap
    figure = new_figure(side + 1.6, side)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(len(labels)):
        for col in range(len(labels)):
            if counts[row, col] == 0:
                colour = "#b0b0b0"  # zeros in grey so the eye finds the real confusions
            else:
                colour = "white" if fractions[row, col] > _DARK_CELL else "black"
            axes.text(col, row, str(counts[row, col]), ha="center", va="center", color=colour, fontsize=10)
    axes.set_xticks(range(len(labels)), labels=labels, rotation=40, ha="right")
    axes.set_yticks(range(len(labels)), labels=[f"{label} ({n})" for label, n in zip(labels, support[:, 0])])
    axes.set_xlabel("predicted")
    axes.set_ylabel("reference (support)")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="fraction of reference row", shrink=0.8)
    return save_figure(figure, path)


def plot_latency_histogram(latencies_ms: Sequence[float], path: Path, *, title: str = "Reply latency") -> Path:
    """Write a histogram of per-utterance latency with p50 and p95 marked to `path` and return it."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latencies to plot. Fix: pass EvalResult.latencies_ms from a non-empty evaluation.")
    p50, p95 = np.percentile(values, [50, 95])
    bins = int(np.clip(np.sqrt(values.size), 5, 40))  # square-root rule, bounded for tiny and huge splits

    figure = new_figure(6.4, 3.6)
    axes = figure.add_subplot()
    axes.hist(values, bins=bins, color="#4a7ab5", edgecolor="white")
    axes.axvline(p50, color="#222222", linestyle="--", label=f"p50 {p50:.0f} ms")
    axes.axvline(p95, color="#c0392b", linestyle=":", linewidth=2, label=f"p95 {p95:.0f} ms")
    axes.set_xlabel("latency per utterance (ms)")
    axes.set_ylabel("utterances")
    axes.set_title(f"{title} (n={values.size})")
    axes.legend()
    return save_figure(figure, path)


def plot_group_accuracy(
    groups: Sequence[tuple[str, str, int, float]], path: Path, *, title: str, split_colours: dict[str, str]
) -> Path:
    """Horizontal bars of accuracy per group (label, split, n, accuracy), coloured by split, n beside each bar."""
    if not groups:
        raise ValueError("no groups to plot. Fix: pass GeneralizationResult.by_voice or .by_channel.")
    figure = new_figure(6.4, 1.0 + 0.32 * len(groups))
    axes = figure.add_subplot()
    positions = np.arange(len(groups))[::-1]  # first group on top
    axes.barh(positions, [g[3] for g in groups], color=[split_colours.get(g[1], "#888888") for g in groups])
    for y, (_, _, n, value) in zip(positions, groups):
        axes.text(min(value + 0.01, 0.9), y, f"{value:.2f} (n={n})", va="center", fontsize=8)
    axes.set_yticks(positions, labels=[g[0] for g in groups], fontsize=8)
    axes.set_xlim(0, 1)
    axes.set_xlabel("user emotion accuracy")
    axes.set_title(title)
    for split, colour in split_colours.items():
        axes.barh([], [], color=colour, label=split)  # legend entries only
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path)
