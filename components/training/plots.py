"""Loss curve PNG from the worker's JSON-lines log, for either training stage.

Built in the platform's one plotting style (components/plotting.py: matplotlib's object API, never `pyplot`).
"""

from __future__ import annotations

import json
from pathlib import Path

from components.errors import ConfigError
from components.plotting import new_figure, save_figure

# What each logged loss is, for the legend; any other loss key is drawn under its own name.
LABELS = {
    "loss": "total",
    "text_loss": "reply text CE",
    "emotion_loss": "emotion (0.6 MSE + 0.4 cos)",
    "user_emotion_loss": "user emotion CE",
    "unit_loss": "speech units CE",
    "mel_loss": "unit -> mel L1",
}
_NOT_LOSSES = {"step", "epoch", "lr", "elapsed_s", "samples_per_s", "tokens_per_s", "tflops"}  # throughput, not loss


def plot_loss_curve(log_path: Path, out_png: Path) -> Path:
    """Every loss in the log (the total thicker) against the optimizer step."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ConfigError(f"{log_path} has no logged steps: train for at least log_every_steps steps")
    steps = [r["step"] for r in rows]
    figure = new_figure(7, 4)
    axes = figure.add_subplot()
    for key in [k for k in rows[0] if k not in _NOT_LOSSES]:
        axes.plot(steps, [r[key] for r in rows], label=LABELS.get(key, key), linewidth=2 if key == "loss" else 1.2)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (mean over ranks)")
    stage = "stage 2 (talker)" if "unit_loss" in rows[0] else "stage 1 (thinker)"
    axes.set_title(f"Emotion Omni training, {stage}")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, out_png)
