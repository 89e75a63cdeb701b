"""EmotionOmniResponder: the one path from a model directory to a reply (used by evaluation, Triton, CLI)."""
from __future__ import annotations

import numpy as np
import pytest

from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS
from components.inference import EmotionOmniResponder


@pytest.fixture(scope="module")
def responder(tiny_model_dir):
    return EmotionOmniResponder.from_pretrained(tiny_model_dir)


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def test_reply_fields(responder, tiny_model_dir):
    reply = responder.respond(chirp(1.2))
    assert reply.user_emotion in USER_EMOTIONS and reply.response_emotion in RESPONSE_EMOTIONS
    assert reply.emotion_vector.dtype == np.float32 and reply.emotion_vector.shape == (16,)
    assert isinstance(reply.text, str)
    speakable = any(c.isalnum() for c in reply.text)
    assert (reply.audio.size > 0) == speakable  # reply speech exactly when there is something to say


def test_batch_equals_one_by_one(responder):
    waves = [chirp(0.8), chirp(1.9)]
    batch = responder.respond_batch(waves)
    single = [responder.respond(w) for w in waves]
    assert [r.text for r in batch] == [r.text for r in single]
    assert np.allclose(batch[1].emotion_vector, single[1].emotion_vector, atol=1e-4)


def test_text_only_mode_needs_no_speech_backend(tiny_model_dir):
    reply = EmotionOmniResponder.from_pretrained(tiny_model_dir, speak=False).respond(chirp(1.0))
    assert reply.audio.size == 0


def test_speech_follows_the_predicted_emotion(responder):
    """The reply voice is the predicted emotion's prosody profile: sad is slower than excited."""
    text = "I hear you, and I am right here with you."
    sad = responder.speech.synthesize(text, "comforting", responder.speaker)
    excited = responder.speech.synthesize(text, "excited", responder.speaker)
    assert sad.size > excited.size


def test_missing_model_dir_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an exported Emotion Omni model"):
        EmotionOmniResponder.from_pretrained(tmp_path)
