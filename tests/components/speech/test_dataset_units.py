"""The speech-units step on a tiny synthesized set: k-means units for every reply, restyled replies (the same
words in another emotion) with their own units and WAVs, and a directory stage 2 can read back."""

from __future__ import annotations

import json

import pytest

from components.audio.io import load_wav
from components.contracts import RESPONSE_EMOTIONS, SPEECH_UNITS_CARD_FILE
from components.speech.config import EmotionOmniToken2WavConfig
from components.speech.dataset_units import build_speech_units, load_speech_units
from components.speech.units import KMeansConfig
from components.synthesis import read_manifest


@pytest.fixture(scope="module")
def units_dir(tiny_dialogues, tmp_path_factory):
    out = tmp_path_factory.mktemp("units")
    build_speech_units(
        tiny_dialogues,
        out,
        EmotionOmniToken2WavConfig(num_units=16, griffin_lim_iters=4),
        KMeansConfig(iterations=20),
        restyled_per_reply=1,
        progress=False,
    )
    return out


def test_every_reply_has_units_at_25_per_second(units_dir, tiny_dialogues):
    speech = load_speech_units(units_dir)
    rows = read_manifest(tiny_dialogues)
    assert set(speech.units) == {r["id"] for r in rows}
    for row in rows[:3]:
        seconds = len(load_wav(tiny_dialogues / row["response_wav"])) / 16000
        assert abs(len(speech.units[row["id"]]) - 25 * seconds) <= 1
    assert all(0 <= u < 16 for units in speech.units.values() for u in units)
    assert speech.extractor["centroids"].shape == (16, 160)


def test_restyled_replies_say_the_same_words_in_another_emotion(units_dir, tiny_dialogues):
    speech = load_speech_units(units_dir)
    train = {r["id"]: r for r in read_manifest(tiny_dialogues) if r["split"] == "train"}
    assert len(speech.restyled) == len(train)  # one per train reply, none for the test split
    for style, units in speech.restyled:
        row = train[style.id]
        assert style.emotion in RESPONSE_EMOTIONS and style.emotion != row["response_emotion"]
        assert len(units) > 10 and (units_dir / style.wav).is_file()
    card = json.loads((units_dir / SPEECH_UNITS_CARD_FILE).read_text())
    assert card["restyled_replies"] == len(train) and card["backend"] == "local"
    assert 0 < card["centroid_resynthesis_stoi"]["mean"] <= 1


def test_an_incomplete_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a speech-units directory"):
        load_speech_units(tmp_path)
