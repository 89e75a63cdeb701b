"""UTMOS, the paper's speech-naturalness score (1-5), from a local TorchScript checkpoint when one is configured.

    export OMNI_UTMOS_CHECKPOINT=/models/utmos22_strong.pt
    scores = utmos([wave_a, wave_b])      # [3.41, 2.97], 16 kHz mono float waves in [-1, 1]

No wheel carries UTMOS weights and nothing may download at run time, so the checkpoint is the operator's: a
TorchScript module with UTMOS22's interface, `forward(wave: (B, T) float32, sr: int) -> (B,) MOS`. SpeechMOS's
`utmos22_strong` has that interface; export it once where it can be downloaded, e.g.

    model = torch.hub.load("tarepan/SpeechMOS:v1.2.0", "utmos22_strong", trust_repo=True).eval()
    torch.jit.trace(model, (torch.zeros(1, 16000), 16000)).save("utmos22_strong.pt")

and mount the file. Unset, the metric is reported as not computed (MetricNotComputed) and DNSMOS stands in; set
but unusable (missing, not TorchScript, wrong output), it is an error naming the variable: a configured metric that
silently disappears would be worse than a failed evaluation.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.contracts import METRIC_UTMOS, SAMPLE_RATE
from components.errors import ConfigError, InputNotFoundError
from components.evaluation.dnsmos import MetricNotComputed

CHECKPOINT_VAR = "OMNI_UTMOS_CHECKPOINT"


def utmos(waves: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[float]:
    """UTMOS per clip (1-5), in input order, one clip at a time (clips differ in length)."""
    path = os.environ.get(CHECKPOINT_VAR, "").strip()
    if not path:
        raise MetricNotComputed(
            METRIC_UTMOS,
            f"no UTMOS checkpoint: set {CHECKPOINT_VAR} to a TorchScript export "
            "(components/evaluation/utmos.py says how); DNSMOS stands in",
        )
    import torch

    model = _load(str(Path(path).expanduser().resolve()))
    scores = []
    with torch.inference_mode():
        for index, wave in enumerate(waves):
            wave = np.asarray(wave, dtype=np.float32)
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"clip {index}: UTMOS needs a non-empty mono wave, got shape {wave.shape}")
            out = model(torch.from_numpy(wave)[None], sample_rate)
            value = float(out.reshape(-1)[0]) if out.numel() == 1 else math.nan
            if not math.isfinite(value):
                raise ConfigError(
                    f"{CHECKPOINT_VAR}={path}: the model returned {tuple(out.shape)} values (or a "
                    "non-finite one) for one clip, not one MOS. Fix: export a model with UTMOS22's "
                    "interface, forward(wave (1, T), sr) -> (1,)"
                )
            scores.append(value)
    return scores


@functools.lru_cache(maxsize=2)
def _load(path: str):
    import torch

    if not Path(path).is_file():
        raise InputNotFoundError(
            f"{CHECKPOINT_VAR}={path} does not exist. Fix: mount the exported checkpoint there, "
            f"or unset {CHECKPOINT_VAR} to report UTMOS as not computed"
        )
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except RuntimeError as error:
        raise ConfigError(
            f"{CHECKPOINT_VAR}={path} is not a TorchScript module ({str(error).splitlines()[0]}). "
            "Fix: save it with torch.jit.trace(...).save() or torch.jit.script(...).save()"
        ) from None
