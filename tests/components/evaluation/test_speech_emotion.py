"""The speech-emotion judge: learns clearly different voices, ignores loudness, round-trips through JSON."""

import json

import numpy as np
import pytest

from components.evaluation.speech_emotion import (
    FEATURE_NAMES,
    JudgeError,
    SpeechEmotionClassifier,
    judge_accuracy,
    speak_in_every_emotion,
    utterance_features,
)

SR = 16_000
# Three synthetic "voices": (pitch Hz, syllables per second). Far apart, so a working judge cannot miss.
_VOICES = {"low_slow": (120.0, 2.5), "mid": (190.0, 4.0), "high_fast": (290.0, 6.0)}


def _voice(label: str, rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """A syllable train: harmonic bursts with the voice's pitch (+-4%) and rate, gaps of silence between."""
    f0, rate = _VOICES[label]
    f0 *= rng.uniform(0.96, 1.04)
    t = np.arange(int(seconds * SR)) / SR
    syllable = (np.sin(np.pi * rate * t) ** 2) * (np.sin(2 * np.pi * rate / 2 * t) > -0.2)  # bursts + pauses
    phase = 2 * np.pi * f0 * t * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))  # a little intonation
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
    noise = 0.002 * rng.standard_normal(t.size)
    return (0.2 * syllable * harmonics / 2 + noise).astype(np.float32)


def _clips(per_label: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [label for label in _VOICES for _ in range(per_label)]
    return [_voice(label, rng) for label in labels], labels


@pytest.fixture(scope="module")
def trained():
    waves, labels = _clips(8, seed=0)
    return SpeechEmotionClassifier(labels=tuple(_VOICES)).fit(waves, labels, seed=0)


def test_features_have_one_value_per_name_and_no_pitch_for_noise():
    rng = np.random.default_rng(0)
    voiced = utterance_features(_voice("mid", rng))
    assert voiced.shape == (len(FEATURE_NAMES),) and np.isfinite(voiced).all()
    noise = utterance_features((0.1 * rng.standard_normal(SR)).astype(np.float32))
    pitch = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("pitch_")]
    assert np.isnan(noise[pitch]).all()
    assert np.isfinite(np.delete(noise, pitch)).all()


def test_judge_separates_distinct_voices_on_held_out_clips(trained):
    waves, labels = _clips(5, seed=1)
    score = judge_accuracy(trained, waves, labels)
    assert score.accuracy == 1.0
    assert score.n == 15 and score.labels == tuple(_VOICES)
    assert np.trace(np.array(score.confusion)) == 15


def test_judge_ignores_playback_level(trained):
    waves, _ = _clips(3, seed=2)
    assert trained.predict([0.2 * w for w in waves]) == trained.predict(waves)


def test_unvoiced_clip_still_gets_a_label(trained):
    noise = (0.1 * np.random.default_rng(3).standard_normal(SR)).astype(np.float32)
    assert trained.predict([noise])[0] in _VOICES


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    waves, _ = _clips(3, seed=4)
    path = trained.save(tmp_path / "judge" / "speech_emotion_judge.json")
    state = json.loads(path.read_text())  # plain JSON, readable without this code
    assert state["labels"] == list(_VOICES) and state["feature_names"] == list(FEATURE_NAMES)
    assert SpeechEmotionClassifier.load(path).predict(waves) == trained.predict(waves)


def test_refusals_name_the_problem(trained, tmp_path):
    waves, labels = _clips(1, seed=5)
    with pytest.raises(JudgeError, match="not trained"):
        SpeechEmotionClassifier().predict(waves)
    with pytest.raises(JudgeError, match=r"\['comforting', 'apologetic', 'calm', 'reassuring'\] have no training"):
        SpeechEmotionClassifier().fit(waves, ["neutral", "cheerful", "excited"])
    with pytest.raises(JudgeError, match=r"\['high_fast', 'low_slow', 'mid'\] are not among the judge's"):
        SpeechEmotionClassifier().fit(waves, labels)
    with pytest.raises(JudgeError, match="one label per clip"):
        SpeechEmotionClassifier(labels=tuple(_VOICES)).fit(waves, labels[:2])
    with pytest.raises(JudgeError, match="not among the judge's"):
        judge_accuracy(trained, waves, ["calm"] * 3)
    stale = json.loads(trained.save(tmp_path / "judge.json").read_text()) | {"feature_version": 0}
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    with pytest.raises(JudgeError, match="retrain the judge"):
        SpeechEmotionClassifier.load(tmp_path / "stale.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(JudgeError, match="not a speech-emotion judge"):
        SpeechEmotionClassifier.load(tmp_path / "other.json")


def test_every_text_is_spoken_in_every_emotion_and_the_voice_is_learnable():
    texts = [
        "I hear you, and I am here to help.",
        "Let us look at this together, one step at a time.",
        "That sounds like a lot to carry today.",
        "We can sort this out before the weekend.",
    ]
    waves, labels = speak_in_every_emotion(texts, emotions=("excited", "comforting"), seed=0)
    assert labels == ["excited", "comforting"] * len(texts)
    again, _ = speak_in_every_emotion(texts[:1], emotions=("excited",), seed=0)
    np.testing.assert_array_equal(again[0], waves[0])  # jitter depends on (seed, index), not thread order

    judge = SpeechEmotionClassifier(labels=("excited", "comforting")).fit(waves[:6], labels[:6])
    assert judge.predict(waves[6:]) == labels[6:]  # a sentence it never heard, in both voices
