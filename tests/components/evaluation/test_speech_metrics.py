"""Speech metrics: pitch, loudness, rate, MCD and STOI move with what they measure and refuse bad audio."""

import json

import numpy as np
import pytest

from components.evaluation.speech_metrics import (
    SpeechMetricError,
    mel_cepstral_distortion,
    prosody,
    speaking_rate,
    stoi_score,
)
from components.synthesis.speech import EspeakSpeech
from components.synthesis.taxonomy import ASSISTANT_SPEAKER

SR = 16_000


def _harmonic(f0_start: float, f0_end: float | None = None, seconds: float = 1.5, amplitude: float = 0.3):
    """Five harmonics with 1/k amplitudes; the pitch glides exponentially from f0_start to f0_end."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f0_start * (f0_end / f0_start) ** (t / seconds) if f0_end else np.full_like(t, f0_start)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (amplitude * sum(np.sin(k * phase) / k for k in range(1, 6)) / 2).astype(np.float32)


def _with_noise(wave, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(len(wave))
    noise *= np.sqrt(np.mean(wave**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return np.clip(wave + noise, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def speech():
    return EspeakSpeech().synthesize(
        "Take a deep breath. The doctor will explain everything tomorrow.", "calm", ASSISTANT_SPEAKER
    )


def test_pitch_of_a_steady_tone_and_range_of_a_glide():
    steady = prosody(_harmonic(150.0))
    assert abs(steady.pitch_hz - 150.0) < 3.0
    assert steady.pitch_range_st < 0.5
    assert steady.voiced_fraction > 0.9

    octave_glide = prosody(_harmonic(150.0, 300.0))
    # 10th to 90th percentile of a glide that is uniform in semitones: 80% of 12 semitones.
    assert octave_glide.pitch_range_st == pytest.approx(9.6, abs=0.6)


def test_louder_copy_has_higher_energy_and_the_same_pitch():
    quiet, loud = prosody(_harmonic(200.0, amplitude=0.2)), prosody(_harmonic(200.0, amplitude=0.4))
    assert loud.energy_db - quiet.energy_db == pytest.approx(6.02, abs=0.1)
    assert loud.pitch_hz == pytest.approx(quiet.pitch_hz, abs=1.0)


def test_silence_around_speech_counts_for_duration_but_not_for_rate():
    silence = np.zeros(SR, dtype=np.float32)
    wave = np.concatenate([silence, _harmonic(180.0, seconds=2.0), silence])
    text = "one two three, I'll four"  # five words: I'll is one

    measured = prosody(wave, text=text)

    assert measured.duration_s == pytest.approx(4.0)
    assert measured.speech_s == pytest.approx(2.0, abs=0.04)
    assert measured.speaking_rate_wps == pytest.approx(2.5, abs=0.07)
    assert speaking_rate(wave, text) == pytest.approx(measured.speaking_rate_wps)
    assert prosody(wave).speaking_rate_wps is None


def test_noise_has_no_pitch_and_says_why():
    noise = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    measured = prosody(noise)
    assert measured.pitch_hz is None and measured.pitch_range_st is None
    assert "voiced" in measured.pitch_note
    json.dumps(measured.to_dict(), allow_nan=False)  # no NaN anywhere


@pytest.mark.parametrize(
    "wave, message",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(SR, dtype=np.float32), "digital silence"),
        (np.zeros((SR, 2), dtype=np.float32), "mono"),
        (np.full(SR, np.nan, dtype=np.float32), "finite"),
        (np.ones(SR, dtype=np.int16), "finite floats"),
    ],
)
def test_unmeasurable_audio_is_refused_by_every_metric(wave, message):
    for measure in (
        prosody,
        lambda w: speaking_rate(w, "hello there"),
        lambda w: mel_cepstral_distortion(_harmonic(150.0), w),
        lambda w: stoi_score(_harmonic(150.0), w),
    ):
        with pytest.raises(SpeechMetricError, match=message):
            measure(wave)


def test_text_without_words_is_refused():
    with pytest.raises(SpeechMetricError, match="no words"):
        speaking_rate(_harmonic(150.0), " ... !")


def test_mcd_is_zero_for_identical_audio_and_grows_with_noise(speech):
    assert mel_cepstral_distortion(speech, speech) == 0.0
    distortions = [mel_cepstral_distortion(speech, _with_noise(speech, snr)) for snr in (30, 10, 0)]
    assert 0.0 < distortions[0] < distortions[1] < distortions[2]


def test_mcd_aligns_a_slower_copy_better_than_a_different_pitch(speech):
    slower = np.interp(np.arange(0, len(speech), 0.8), np.arange(len(speech)), speech).astype(np.float32)
    assert mel_cepstral_distortion(speech, slower) < mel_cepstral_distortion(speech, _harmonic(220.0, seconds=3.0))


def test_mcd_refuses_too_short_audio():
    with pytest.raises(SpeechMetricError, match="generated has 0.05.* under the 0.1 s"):
        mel_cepstral_distortion(_harmonic(150.0), _harmonic(150.0, seconds=0.05))


def test_stoi_is_one_for_identical_audio_and_drops_with_noise(speech):
    assert stoi_score(speech, speech) > 0.99
    padded = np.concatenate([speech, np.zeros(800, dtype=np.float32)])  # a vocoder's extra tail is cut off
    assert stoi_score(speech, padded) > 0.99
    assert stoi_score(speech, _with_noise(speech, 0)) < stoi_score(speech, _with_noise(speech, 20)) < 0.999


def test_stoi_refuses_too_little_speech_instead_of_returning_a_placeholder():
    with pytest.raises(SpeechMetricError, match="0.4 s"):
        stoi_score(_harmonic(150.0, seconds=0.2), _harmonic(150.0, seconds=0.2))
