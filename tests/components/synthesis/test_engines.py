"""Every engine speaks every emotion, and the emotion moves pitch, loudness and rate the way it says."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from components.audio.formants import warp_formants
from components.contracts import RESPONSE_EMOTIONS, SAMPLE_RATE, USER_EMOTIONS
from components.synthesis import SpeechError, engines
from components.synthesis.engines import EngineSpeech
from components.synthesis.taxonomy import ENGINE_VOICES

TEXT = "I really did not expect the news about my new job today."
ONE_VOICE_EACH = ["espeak-ng:en-us+m3", "flite:slt", "festival:kal_diphone"]


@pytest.fixture(scope="module")
def tts() -> EngineSpeech:
    return EngineSpeech()


def pitch_hz(wave: np.ndarray) -> float:
    """Median F0 of the voiced, loud frames."""
    f0 = librosa.yin(wave, fmin=60, fmax=600, sr=SAMPLE_RATE, frame_length=1024)
    rms = librosa.feature.rms(y=wave, frame_length=1024, hop_length=256)[0][: len(f0)]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


def level_db(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(wave**2))))


@pytest.mark.parametrize("speaker", ONE_VOICE_EACH)
def test_every_engine_speaks_every_user_emotion_the_way_it_sounds(tts, speaker):
    spoken = {emotion: tts.synthesize(TEXT, emotion, speaker) for emotion in USER_EMOTIONS}
    for emotion, wave in spoken.items():
        assert wave.dtype == np.float32 and 1.0 < len(wave) / SAMPLE_RATE < 8.0 and np.isfinite(wave).all(), emotion
    pitch = {e: pitch_hz(w) for e, w in spoken.items()}
    level = {e: level_db(w) for e, w in spoken.items()}
    assert pitch["sad"] < 0.9 * pitch["neutral"] < 0.9 * pitch["happy"] < pitch["surprised"]
    assert pitch["fearful"] > 1.1 * pitch["neutral"]
    assert level["angry"] > level["neutral"] + 5 and level["sad"] < level["neutral"] - 2
    assert len(spoken["sad"]) > len(spoken["neutral"]) > len(spoken["angry"])  # slow, plain, fast


def test_every_voice_speaks_and_response_emotions_too(tts):
    for speaker in tts.speakers:
        assert len(tts.synthesize("Okay, I understand.", "neutral", speaker)) > SAMPLE_RATE // 4, speaker
    for emotion in RESPONSE_EMOTIONS:
        assert np.abs(tts.synthesize("Okay, I understand.", emotion, "flite:rms")).max() > 0.01, emotion
    assert len(tts.speakers) == sum(len(v) for v in ENGINE_VOICES.values())


def test_jitter_is_seeded(tts):
    one = tts.synthesize(TEXT, "happy", "flite:awb", np.random.default_rng(3))
    assert np.array_equal(one, tts.synthesize(TEXT, "happy", "flite:awb", np.random.default_rng(3)))
    other = tts.synthesize(TEXT, "happy", "flite:awb", np.random.default_rng(4))
    assert len(other) != len(one) or not np.array_equal(other, one)


def test_speaker_randomisation_moves_formants_but_keeps_pitch_and_length(tts):
    """The vocal-tract warp is a speaker trait: the formants move by its factor, the pitch and length stay."""
    plain = tts.synthesize(TEXT, "neutral", "flite:awb")
    for factor in (0.92, 1.08):
        warped = warp_formants(plain, factor)
        assert len(warped) == len(plain) and abs(pitch_hz(warped) / pitch_hz(plain) - 1) < 0.05  # < 1 semitone
        # F2 and F3 on average (F1 sits among the source's harmonics, where the estimate is coarse).
        ratio = formants_hz(warped) / formants_hz(plain)
        assert abs(ratio[1:].mean() - factor) < 0.04, ratio
    with pytest.raises(ValueError, match="outside 0.8-1.25"):
        warp_formants(plain, 1.5)
    # Frames linear prediction cannot fit (a pure tone, digital silence) pass through instead of failing.
    tone = np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    for wave in (tone, np.zeros(SAMPLE_RATE, np.float32), np.concatenate([tone, np.zeros(4000, np.float32)])):
        assert np.isfinite(warp_formants(wave, 1.1)).all()


def formants_hz(wave: np.ndarray) -> np.ndarray:
    """Median F1-F3 over loud frames: the narrow-band poles of an order-18 linear-prediction fit."""
    found = []
    for frame in librosa.util.frame(wave, frame_length=512, hop_length=256).T:
        if np.sqrt(np.mean(frame**2)) < 0.3 * np.sqrt(np.mean(wave**2)):
            continue
        poles = np.roots(librosa.lpc(frame * np.hanning(512) + 1e-9, order=18))
        poles = poles[poles.imag > 0]
        hz, bandwidth = np.angle(poles) * SAMPLE_RATE / (2 * np.pi), -np.log(np.abs(poles)) * SAMPLE_RATE / np.pi
        peaks = np.sort(hz[(hz > 200) & (bandwidth < 400)])
        if len(peaks) >= 3:
            found.append(peaks[:3])
    return np.median(found, axis=0)


def test_bad_speakers_text_and_missing_engines_are_named(tts, monkeypatch):
    with pytest.raises(ValueError, match="speaker 'flite:nobody' is not one of"):
        tts.synthesize(TEXT, "happy", "flite:nobody")
    with pytest.raises(ValueError, match="letters or digits"):
        tts.synthesize("?!", "happy", "flite:slt")
    with pytest.raises(ValueError, match="no prosody profile"):
        tts.synthesize(TEXT, "bored", "flite:slt")
    with pytest.raises(ValueError, match="unknown TTS engines"):
        EngineSpeech(engines=("mbrola",))
    monkeypatch.setattr(engines.shutil, "which", lambda name: None if name == "text2wave" else f"/usr/bin/{name}")
    with pytest.raises(SpeechError, match="apt-get install festival"):
        EngineSpeech()
