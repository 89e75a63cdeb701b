"""EmotionOmniResponder: the single object every consumer of a trained model goes through."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.audio.features import LogMelFrontend
from components.export.pretrained import load_pretrained
from components.model.modeling import EmotionOmniModel


@dataclass
class Reply:
    text: str
    response_emotion: str          # one of contracts.RESPONSE_EMOTIONS
    user_emotion: str              # one of contracts.USER_EMOTIONS
    emotion_vector: np.ndarray     # float32 (emotion_dim,): the paper's vector output
    audio: np.ndarray              # float32 mono 16 kHz reply speech; empty when speech is off


class EmotionOmniResponder:
    """Wraps a loaded model, its tokenizer, the log-mel front end and the reply voice."""

    def __init__(self, model: EmotionOmniModel, tokenizer, speak: bool = True, speaker: str | None = None):
        self.model = model.eval()
        self.device = next(model.parameters()).device  # inputs are built on CPU and moved here
        self.tokenizer = tokenizer
        config = model.config
        self.frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
        self.speech = None
        self.speaker = speaker
        if speak:
            # Imported here so text-only users (evaluation) do not need espeak-ng installed.
            from components.synthesis.speech import EspeakSpeech
            from components.synthesis.taxonomy import ASSISTANT_SPEAKER
            self.speech = EspeakSpeech()
            self.speaker = speaker or ASSISTANT_SPEAKER

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, speak: bool = True,
                        device: str = "cpu") -> "EmotionOmniResponder":
        model, tokenizer = load_pretrained(Path(model_dir), device=device)
        return cls(model, tokenizer, speak=speak)

    def respond(self, wave: np.ndarray) -> Reply:
        """One utterance (float32 mono 16 kHz) -> Reply."""
        return self.respond_batch([wave])[0]

    def respond_batch(self, waves: list[np.ndarray]) -> list[Reply]:
        """A batch of utterances -> one Reply each, generated together."""
        features, frames = self.frontend(waves)
        features, frames = features.to(self.device), frames.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(features, frames)
        config = self.model.config
        replies = []
        for i, ids in enumerate(out.token_ids):
            text = self.tokenizer.decode(ids).strip()
            emotion = config.response_emotions[int(out.response_emotion[i])]
            # Nothing speakable (empty, or only punctuation from an undertrained model): no audio rather
            # than an error that would fail every request batched with this one.
            speakable = self.speech is not None and any(c.isalnum() for c in text)
            audio = (self.speech.synthesize(text, emotion, self.speaker) if speakable
                     else np.zeros(0, dtype=np.float32))
            replies.append(Reply(
                text=text, response_emotion=emotion,
                user_emotion=config.user_emotions[int(out.user_emotion[i])],
                emotion_vector=out.emotion_vector[i].float().cpu().numpy().astype(np.float32), audio=audio))
        return replies
