"""The learning-rate schedule every training run here uses: a linear warm-up, then a cosine down to 10 %."""

from __future__ import annotations

import math
from collections.abc import Callable


def lr_schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The factor on the base learning rate at each step, for torch.optim.lr_scheduler.LambdaLR."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
