"""The speech backend: emotion must really be audible, jitter seeded, and failures must say what to do."""

import shutil

import numpy as np
import pytest

from components.contracts import RESPONSE_EMOTIONS, SAMPLE_RATE, USER_EMOTIONS
from components.synthesis import EspeakSpeech, SpeechConfig, SpeechError, SynthesisConfig, synthesize_dataset
from components.synthesis.taxonomy import ASSISTANT_SPEAKER, ENGINE_VOICES, PROSODY
from components.synthesis.text import USER_TEMPLATES, render_user
from components.synthesis.topics import TOPICS

SENTENCE = "I really did not expect my flight to get cancelled today."


@pytest.fixture(scope="module")
def tts():
    return EspeakSpeech()


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(wave**2)))


def median_f0(wave: np.ndarray, fmin: float = 80.0, fmax: float = 400.0) -> float:
    """Median pitch over voiced 40 ms frames, by autocorrelation; coarse, but enough to order emotions."""
    n, hop = int(0.04 * SAMPLE_RATE), int(0.01 * SAMPLE_RATE)
    loud, pitches = 0.3 * rms(wave), []
    for start in range(0, len(wave) - n, hop):
        frame = wave[start : start + n] * np.hanning(n)
        if rms(frame) < loud:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            pitches.append(SAMPLE_RATE / lag)
    return float(np.median(pitches))


def test_every_emotion_has_a_prosody_profile():
    assert set(PROSODY) == set(USER_EMOTIONS) | set(RESPONSE_EMOTIONS)


def test_speakers_exist_in_espeak(tts):
    for speaker in (*ENGINE_VOICES["espeak-ng"], ASSISTANT_SPEAKER):
        assert len(tts.synthesize("Hello there.", "neutral", speaker)) > 0


def test_sad_is_slower_and_quieter_than_angry(tts):
    sad, angry = tts.synthesize(SENTENCE, "sad", "en-us+m3"), tts.synthesize(SENTENCE, "angry", "en-us+m3")
    assert len(sad) > 1.3 * len(angry)
    assert rms(sad) < 0.5 * rms(angry)


def test_happy_is_higher_pitched_than_sad(tts):
    happy, sad = tts.synthesize(SENTENCE, "happy", "en+f4"), tts.synthesize(SENTENCE, "sad", "en+f4")
    assert median_f0(happy) > 1.3 * median_f0(sad)


def test_comforting_reply_is_slower_and_softer_than_excited(tts):
    comforting = tts.synthesize(SENTENCE, "comforting", ASSISTANT_SPEAKER)
    excited = tts.synthesize(SENTENCE, "excited", ASSISTANT_SPEAKER)
    assert len(comforting) > 1.2 * len(excited) and rms(comforting) < rms(excited)


def test_jitter_is_seeded(tts):
    same = [tts.synthesize(SENTENCE, "neutral", "en-us+f2", np.random.default_rng(3)) for _ in range(2)]
    other = tts.synthesize(SENTENCE, "neutral", "en-us+f2", np.random.default_rng(4))
    np.testing.assert_array_equal(same[0], same[1])
    assert len(other) != len(same[0]) or not np.array_equal(other, same[0])


def test_every_user_utterance_stays_under_six_seconds(tts):
    # sad is the slowest user profile, so its longest clip bounds all of them; the margin covers rate jitter.
    assert min(USER_EMOTIONS, key=lambda e: PROSODY[e].rate) == "sad"
    utterances = {
        render_user(t, clause)
        for topics in TOPICS.values()
        for clause, _ in topics["sad"]
        for t in USER_TEMPLATES["sad"]
    }
    # The 12 longest in characters: speaking all 640 takes 30 s, and duration follows length closely.
    longest_texts = sorted(utterances, key=len)[-12:]
    longest = max(len(tts.synthesize(u, "sad", "en-us+m3")) for u in longest_texts) / SAMPLE_RATE
    assert longest * (1 + tts.config.rate_jitter) < 6.0


def test_unknown_emotion_names_the_known_ones(tts):
    with pytest.raises(ValueError, match="no prosody profile for emotion 'bored'.*add it to PROSODY"):
        tts.synthesize(SENTENCE, "bored", "en-us+m3")


def test_unknown_voice_says_how_to_list_voices(tts):
    with pytest.raises(SpeechError, match=r"voice 'xx-nope'.*espeak-ng --voices=en"):
        tts.synthesize(SENTENCE, "neutral", "xx-nope")


@pytest.mark.parametrize("missing", ["espeak-ng", "sox"])
def test_missing_binary_names_the_install_command(monkeypatch, tmp_path, missing):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == missing else real_which(name))
    with pytest.raises(SpeechError, match=f"`{missing}` is not on PATH.*apt-get install espeak-ng sox"):
        EspeakSpeech()
    with pytest.raises(SpeechError, match=f"`{missing}` is not on PATH.*apt-get install.*{missing}"):
        synthesize_dataset(SynthesisConfig(n=18), tmp_path / "data", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_text_with_nothing_to_say_is_refused(tts):
    with pytest.raises(ValueError, match="must contain letters or digits"):
        tts.synthesize("...", "neutral", ASSISTANT_SPEAKER)


def test_speech_over_max_seconds_says_what_to_change():
    tts = EspeakSpeech(SpeechConfig(max_seconds=1.0))
    with pytest.raises(SpeechError, match="unusable: audio is .* over the limit of 1 s.*SpeechConfig.max_seconds"):
        tts.synthesize(SENTENCE, "sad", "en-us+m3")
