"""EmotionOmniResponder: the single object every consumer of a trained model goes through."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.audio.features import LogMelFrontend
from components.export.pretrained import load_pretrained
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.model.thinker import EmotionOmniThinkerGenerateOutput

# Why a reply has no audio (Reply.speech_note); "" when it has.
NO_TALKER = "this model has no talker (a stage-1 model): train stage 2 for speech"
EMPTY_REPLY = "the reply has no letters or digits: there is nothing to say"
NO_UNITS = "the talker produced no speech units for this reply"
SPEECH_OFF = "speech was not requested"


@dataclass
class Reply:
    text: str
    response_emotion: str  # one of contracts.RESPONSE_EMOTIONS
    user_emotion: str  # one of contracts.USER_EMOTIONS
    emotion_vector: np.ndarray  # float32 (emotion_dim,): the paper's vector output
    audio: np.ndarray  # float32 mono 16 kHz: the model's own speech (talker + token2wav); may be empty
    units: list[int]  # the speech units the talker produced for `audio`
    speech_note: str = ""  # why `audio` is empty ("" when it is not)


class EmotionOmniResponder:
    """Wraps a loaded model, its tokenizer and the log-mel front end. Speech is the model's own: the talker's
    units through its token2wav; a text-only (stage-1) model answers with empty audio and says why."""

    def __init__(
        self, model: EmotionOmniForConditionalGeneration, tokenizer, speak: bool = True, speaker: str | None = None
    ):
        self.model = model.eval()
        self.device = next(model.parameters()).device  # inputs are built on CPU and moved here
        self.tokenizer = tokenizer
        config = model.config.thinker_config
        self.frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
        self.speak = speak
        self.speaker = speaker  # a token2wav voice; None is the assistant's
        # Seconds the last respond_batch spent writing the text (thinker) and speaking it (talker + token2wav).
        self.last_timings: dict[str, float] = {"think_s": 0.0, "speak_s": 0.0}

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, speak: bool = True, device: str = "cpu") -> EmotionOmniResponder:
        model, tokenizer = load_pretrained(Path(model_dir), device=device)
        return cls(model, tokenizer, speak=speak)

    @property
    def can_speak(self) -> bool:
        return self.model.talker is not None

    def respond(self, wave: np.ndarray) -> Reply:
        """One utterance (float32 mono 16 kHz) -> Reply."""
        return self.respond_batch([wave])[0]

    def respond_batch(self, waves: list[np.ndarray]) -> list[Reply]:
        """A batch of utterances -> one Reply each, generated together (text, then speech for the batch)."""
        started = time.perf_counter()
        thinker = self._think(waves)
        thought = time.perf_counter()
        texts = [self.tokenizer.decode(ids).strip() for ids in thinker.token_ids]
        notes = [self._speech_note(text) for text in texts]
        units: list[list[int]] = [[] for _ in texts]
        audio = [np.zeros(0, dtype=np.float32) for _ in texts]
        if any(note == "" for note in notes):
            units, audio = self.model.speak(thinker, [note == "" for note in notes], self.speaker)
            notes = [note or (NO_UNITS if not u else "") for note, u in zip(notes, units)]
        self.last_timings = {"think_s": thought - started, "speak_s": time.perf_counter() - thought}
        return [self._reply(thinker, i, text, units[i], audio[i], notes[i]) for i, text in enumerate(texts)]

    def stream_speech(self, wave: np.ndarray) -> tuple[Reply, Iterator[np.ndarray]]:
        """One utterance -> its Reply (text and emotions; no audio yet) and an iterator of audio chunks, made as
        the talker emits units. The text is ready before the first chunk: a caller can send it first."""
        thinker = self._think([wave])
        text = self.tokenizer.decode(thinker.token_ids[0]).strip()
        note = self._speech_note(text)
        reply = self._reply(thinker, 0, text, [], np.zeros(0, dtype=np.float32), note)
        return reply, (iter(()) if note else self.model.stream_speech(thinker, 0, self.speaker))

    def _think(self, waves: list[np.ndarray]) -> EmotionOmniThinkerGenerateOutput:
        features, frames = self.frontend(waves)
        with torch.inference_mode():
            return self.model.thinker.generate(features.to(self.device), frames.to(self.device))

    def _reply(
        self,
        thinker: EmotionOmniThinkerGenerateOutput,
        i: int,
        text: str,
        units: list[int],
        audio: np.ndarray,
        note: str,
    ) -> Reply:
        config = self.model.config.thinker_config
        return Reply(
            text=text,
            response_emotion=config.response_emotions[int(thinker.response_emotion[i])],
            user_emotion=config.user_emotions[int(thinker.user_emotion[i])],
            emotion_vector=thinker.emotion_vector[i].float().cpu().numpy().astype(np.float32),
            audio=audio,
            units=units,
            speech_note=note,
        )

    def _speech_note(self, text: str) -> str:
        """Why this reply gets no audio, before any speech is generated ("" when it will be spoken)."""
        if not self.speak:
            return SPEECH_OFF
        if not self.can_speak:
            return NO_TALKER
        # Nothing speakable (empty, or only punctuation from an undertrained model): no audio rather than an
        # error that would fail every request batched with this one.
        return "" if any(c.isalnum() for c in text) else EMPTY_REPLY
