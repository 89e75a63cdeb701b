"""Loss curve PNG from the worker's JSON-lines log."""
from __future__ import annotations

import json
from pathlib import Path


def plot_loss_curve(log_path: Path, out_png: Path) -> Path:
    """Total loss and its three parts against the optimizer step."""
    import matplotlib
    matplotlib.use("Agg")  # headless; chosen here, not at import
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{log_path} has no logged steps: train for at least log_every_steps steps")
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, label in (("loss", "total"), ("text_loss", "reply text CE"),
                       ("emotion_loss", "emotion (0.6 MSE + 0.4 cos)"), ("user_emotion_loss", "user emotion CE")):
        ax.plot(steps, [r[key] for r in rows], label=label, linewidth=2 if key == "loss" else 1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (mean over ranks)")
    ax.set_title("Emotion Omni training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)
