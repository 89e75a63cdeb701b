"""EmotionOmniResponder: the one path from a model directory to a reply (used by evaluation, Triton, CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS
from components.inference import EmotionOmniResponder
from components.inference.responder import EMPTY_REPLY, NO_TALKER, SPEECH_OFF


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
    # The model's own speech: the talker's units through its token2wav, 640 samples (40 ms) per unit.
    assert reply.audio.dtype == np.float32 and reply.audio.size == 640 * len(reply.units)
    assert (reply.audio.size > 0) == (reply.speech_note == "")
    if any(c.isalnum() for c in reply.text):
        assert reply.units and np.isfinite(reply.audio).all()
    else:  # nothing speakable: no audio, and the reason, never a failed batch
        assert reply.speech_note == EMPTY_REPLY


def test_batch_equals_one_by_one(responder):
    waves = [chirp(0.8), chirp(1.9)]
    batch = responder.respond_batch(waves)
    single = [responder.respond(w) for w in waves]
    assert [r.text for r in batch] == [r.text for r in single]
    assert np.allclose(batch[1].emotion_vector, single[1].emotion_vector, atol=1e-4)
    # Speech too: the talker's units and the vocoded audio of a batch are each reply's own.
    assert [r.units for r in batch] == [r.units for r in single]
    for b, s in zip(batch, single):
        assert b.audio.shape == s.audio.shape and np.allclose(b.audio, s.audio, atol=1e-4)


def test_text_only_mode_and_text_only_models_say_why_there_is_no_audio(tiny_model_dir, tiny_text_model_dir):
    reply = EmotionOmniResponder.from_pretrained(tiny_model_dir, speak=False).respond(chirp(1.0))
    assert reply.audio.size == 0 and reply.speech_note == SPEECH_OFF
    stage1 = EmotionOmniResponder.from_pretrained(tiny_text_model_dir)
    assert not stage1.can_speak
    reply = stage1.respond(chirp(1.0))
    assert reply.audio.size == 0 and reply.speech_note == NO_TALKER


def test_streamed_speech_adds_up_to_the_whole_reply(responder):
    wave = chirp(1.5)
    whole = responder.respond(wave)
    reply, chunks = responder.stream_speech(wave)
    assert reply.text == whole.text and reply.speech_note == whole.speech_note
    streamed = list(chunks)
    assert sum(len(c) for c in streamed) == whole.audio.size
    if whole.audio.size > 640 * 30:  # long enough for several chunks
        assert len(streamed) > 1


def test_missing_model_dir_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an exported Emotion Omni model"):
        EmotionOmniResponder.from_pretrained(tmp_path)
