"""The one plotting style of every report's PNGs (dataset card, training, evaluation, benchmarks).

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), never `pyplot`: saving a PNG then
renders through the Agg canvas without selecting a global backend, so plotting works headless in a pipeline pod,
from several threads at once, leaves an interactive session's backend alone and keeps no figure alive after
returning (pyplot's figure manager would hold every figure until closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Pixels per inch of saved PNGs: sharp in a browser report without making the HTML heavy; one value, so the
# dataset card's, training's and evaluation's figures match.
DPI = 110
_EDGE = "#333333"
_MEDIAN = "#222222"
_NOTE = "#555555"  # small annotations (counts), quieter than the data


def new_figure(width: float, height: float) -> Figure:
    """A figure `width` x `height` inches whose layout keeps labels, legends and colour bars inside it."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write `figure` as a PNG at DPI to `path`; return the path."""
    figure.savefig(path, dpi=DPI)
    return Path(path)


def boxes_with_counts(
    axes: Axes,
    data: Sequence[Sequence[float]],
    positions: Sequence[float],
    *,
    colour: str,
    width: float,
    **boxplot_options,
) -> None:
    """A box per non-empty series of `data` at its position, filled with `colour`, and `n=<count>` under every
    position, 0 included, so a missing group shows as such rather than as a gap. `boxplot_options` go to
    `Axes.boxplot` (e.g. manage_ticks=False when the caller sets the ticks)."""
    drawn = [i for i, values in enumerate(data) if len(values)]
    if drawn:
        boxes = axes.boxplot(
            [data[i] for i in drawn],
            positions=[positions[i] for i in drawn],
            widths=width,
            patch_artist=True,
            **boxplot_options,
        )
        for box in boxes["boxes"]:
            box.set(facecolor=colour, edgecolor=_EDGE)
        for median in boxes["medians"]:
            median.set(color=_MEDIAN)
    for position, values in zip(positions, data):
        axes.annotate(
            f"n={len(values)}",
            (position, 0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color=_NOTE,
        )
