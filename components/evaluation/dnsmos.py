"""DNSMOS P.835 quality scores of spoken replies: a stand-in for UTMOS, computed offline.

    scores = dnsmos([wave_a, wave_b])   # [{"ovrl": 2.94, "sig": 3.18, "bak": 4.01, "p808": 3.35}, ...]

UTMOS, the naturalness predictor speech-LLM papers report, needs weights downloaded at run time, which this
platform cannot do. DNSMOS (Microsoft's Deep Noise Suppression MOS) ships its ONNX models inside the
`speechmos` wheel and runs with onnxruntime, so it is the stand-in: a non-intrusive MOS predictor on the
1-5 scale. It was trained to rate noise suppression, not TTS, so read it as "how clean and natural does
this sound", and compare models with each other rather than with UTMOS numbers from papers.
Keys: `sig` speech signal quality, `bak` background noise (5 = none), `ovrl` overall (the P.835 triple),
and `p808` the older single P.808 MOS. Clips shorter than 9 s are tiled to 9.01 s by `speechmos`, longer
ones are scored in 9 s windows every second and averaged.

When `speechmos`, `onnxruntime` or the model files are missing, `dnsmos` raises MetricNotComputed with the
reason, which the caller reports as "not computed"; nothing here ever estimates a score. A model file that
exists but does not load is a broken install and raises onnxruntime's own error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from components.audio.io import SILENCE_PEAK
from components.contracts import SAMPLE_RATE

DNSMOS_KEYS: tuple[str, ...] = ("ovrl", "sig", "bak", "p808")

# speechmos's result keys for DNSMOS_KEYS, in the same order.
_SPEECHMOS_KEYS = ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")

_INSTALL_HINT = "install them with `pip install speechmos==0.0.1.1 onnxruntime==1.32.0` (both are in pyproject.toml)"


class MetricNotComputed(Exception):
    """A metric could not be computed here; `reason` says why, for the report's "not computed" line."""

    def __init__(self, metric: str, reason: str):
        super().__init__(f"{metric} not computed: {reason}")
        self.metric = metric
        self.reason = reason


def dnsmos(waves: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[dict[str, float]]:
    """DNSMOS scores per clip, in input order: {"ovrl", "sig", "bak", "p808"} on the 1-5 MOS scale.

    Clips at other rates are resampled to the 16 kHz DNSMOS expects. Raises ValueError for a clip that is
    empty, silent, not mono or not finite (naming its index), and MetricNotComputed when the models are
    unavailable. Slow: a 7 s clip is tiled to 14 s and scored in three 9 s windows, 1.4-1.9 s per clip
    on a shared 2-core machine, so score a sample of replies rather than a whole test split.
    """
    clips = [_prepared(wave, index, sample_rate) for index, wave in enumerate(waves)]
    if not clips:
        return []
    score = _load_scorer()
    results = []
    for clip in clips:
        raw = score(clip, SAMPLE_RATE, False)  # False: the standard, not the personalised, DNSMOS model
        results.append({key: float(raw[source]) for key, source in zip(DNSMOS_KEYS, _SPEECHMOS_KEYS)})
    return results


@functools.lru_cache(maxsize=1)
def _load_scorer():
    """speechmos's DNSMOS scorer, loaded once per process, or MetricNotComputed saying why not."""
    try:  # imported when used: optional evaluation extras
        import onnxruntime
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError as err:
        raise MetricNotComputed("DNSMOS", f"{err.name or err} is not installed; {_INSTALL_HINT}") from None
    models = Path(speechmos_dnsmos.__file__).parent / "dnsmos_models"  # the files speechmos.dnsmos.run() loads
    options = onnxruntime.SessionOptions()
    # Idle onnxruntime threads busy-wait by default; on a shared 2-core machine that cost 2.2-2.6 s per
    # clip instead of 1.4-1.9 s, and it slows whatever else the evaluation runs alongside.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
    missing = [path.name for path in (primary, p808) if not path.is_file()]
    if missing:
        raise MetricNotComputed("DNSMOS", f"{missing} missing from {models}; reinstall speechmos==0.0.1.1")
    # DNSMOS.__init__ would build the sessions with default options, so it is skipped; __call__ (speechmos
    # 0.0.1.1, pinned) needs only these two sessions.
    scorer = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
    scorer.onnx_sess = onnxruntime.InferenceSession(str(primary), options)
    scorer.p808_onnx_sess = onnxruntime.InferenceSession(str(p808), options)
    return scorer


def _prepared(wave: np.ndarray, index: int, sample_rate: int) -> np.ndarray:
    """Clip `index` as float32 mono in [-1, 1] at 16 kHz, or a ValueError naming it."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"clip {index} has shape {wave.shape}; DNSMOS needs mono (T,): downmix with wave.mean(axis=1)")
    if wave.size == 0 or not np.isfinite(wave).all() or np.abs(wave).max() < SILENCE_PEAK:
        # speechmos tiles short clips by doubling them and would loop forever on an empty one
        raise ValueError(f"clip {index} is empty, silent or not finite; DNSMOS needs audible speech")
    if sample_rate != SAMPLE_RATE:
        step = math.gcd(sample_rate, SAMPLE_RATE)
        wave = resample_poly(wave, SAMPLE_RATE // step, sample_rate // step).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)  # speechmos refuses samples outside [-1, 1], which resampling can overshoot
