"""DNSMOS (the offline stand-in for UTMOS): MOS-scale scores that notice noise; never a guess when unavailable."""

import sys

import numpy as np
import pytest
from scipy.signal import resample_poly

from components.evaluation import dnsmos as dnsmos_module
from components.evaluation.dnsmos import DNSMOS_KEYS, MetricNotComputed, dnsmos
from components.synthesis.speech import EspeakSpeech
from components.synthesis.taxonomy import ASSISTANT_SPEAKER


@pytest.fixture(scope="module")
def speech():
    return EspeakSpeech().synthesize(
        "Take a deep breath. The doctor will explain everything tomorrow.", "calm", ASSISTANT_SPEAKER
    )


def test_scores_are_on_the_mos_scale_and_background_noise_lowers_bak(speech):
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2)) * 10 ** (-5 / 20)  # 5 dB SNR

    clean, noisy = dnsmos([speech, np.clip(speech + noise, -1, 1)])

    for scores in (clean, noisy):
        assert tuple(scores) == DNSMOS_KEYS
        assert all(1.0 <= value <= 5.0 for value in scores.values())
    assert noisy["bak"] < clean["bak"] - 1.0
    assert noisy["ovrl"] < clean["ovrl"]


def test_other_sample_rates_are_resampled(speech):
    at_8k = resample_poly(speech, 1, 2).astype(np.float32)
    assert dnsmos([at_8k], sample_rate=8_000)[0]["sig"] == pytest.approx(dnsmos([speech])[0]["sig"], abs=0.4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(0, dtype=np.float32), "clip 1 is empty"),
        (np.zeros(16_000, dtype=np.float32), "clip 1 is empty, silent"),
        (np.zeros((16_000, 2), dtype=np.float32), "clip 1 has shape"),
    ],
)
def test_unscorable_clips_are_refused_by_index(speech, bad, message):
    with pytest.raises(ValueError, match=message):
        dnsmos([speech, bad])


def test_missing_package_means_not_computed(monkeypatch):
    dnsmos_module._load_scorer.cache_clear()
    monkeypatch.setitem(sys.modules, "speechmos", None)  # makes `import speechmos` raise ImportError
    try:
        with pytest.raises(MetricNotComputed, match="speechmos is not installed.*pip install") as caught:
            dnsmos([np.ones(16_000, dtype=np.float32) * 0.1])
        assert caught.value.metric == "DNSMOS" and "speechmos" in caught.value.reason
    finally:
        dnsmos_module._load_scorer.cache_clear()  # the next caller loads the real models again
