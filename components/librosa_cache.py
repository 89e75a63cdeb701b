"""Compile librosa's numba kernels once, on one process, right after an install.

librosa caches its numba kernels (`cache=True`) beside its code in site-packages, and a fresh install has none: the
first processes that import or call them compile them and write that cache. Two processes writing it at once can
leave a cache that crashes every later process that loads it (a segfault inside a gufunc call). Seen in a fresh
clone's `make test` on 2026-11-29, whose two pytest workers reached librosa together: every later worker crashed in
the dataset filters and card plots, and so did a plain script with the same YIN and onset calls in that venv.

So `infra/setup.sh` and the components image run this once after installing, before anything runs in parallel:
it runs each librosa path the platform uses (pitch, onsets, prosody, MCD, the dataset card's pitch) on a synthetic
voiced clip, which compiles and caches every kernel those paths reach; later steps, ranks and test workers only
read the cache.

    python -m components.librosa_cache
"""

from __future__ import annotations

import time

import numpy as np

from components.contracts import SAMPLE_RATE


def _voiced_clip(seconds: float = 1.5) -> np.ndarray:
    """A vowel-like clip: a 180 Hz tone with harmonics under a syllable-rate envelope, so pitch trackers, onset
    detection and the loudness gates all find voiced frames and take their full code paths."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 180.0 * k * t) / k for k in (1, 2, 3))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (0.3 * tone * envelope).astype(np.float32)


def compile_kernels() -> float:
    """Run every librosa path the platform uses once; return the seconds it took."""
    from components.evaluation.speech_emotion import utterance_features
    from components.evaluation.speech_metrics import mel_cepstral_distortion, prosody
    from components.synthesis.card_plots import median_pitch_hz

    started = time.perf_counter()
    clip = _voiced_clip()
    utterance_features(clip)
    prosody(clip, text="a short warm up sentence")
    mel_cepstral_distortion(clip, np.roll(clip, 160))
    median_pitch_hz(clip)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"librosa's numba kernels compiled and cached in {compile_kernels():.1f} s")
