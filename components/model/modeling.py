"""EmotionOmniForConditionalGeneration: thinker + talker + token2wav under one model, as Qwen2.5-Omni.

    model = EmotionOmniForConditionalGeneration(config)                 # config: EmotionOmniConfig
    out = model(**batch)                                                # stage 1 or stage 2 loss, by the batch
    reply = model.generate(input_features, audio_frames)                # text, emotion vector, units, audio
    for chunk in model.stream_speech(reply.thinker, 0): ...             # one reply's audio as it is made
    model.save_pretrained(dir); EmotionOmniForConditionalGeneration.from_pretrained(dir)

Stage 1 trains the thinker (a batch without speech units). Stage 2 freezes the thinker and trains the talker
and, with the local token2wav, its unit -> mel model (a batch with `speech_units`; a CosyVoice2 token2wav stays
frozen): the thinker, run without gradients and in eval mode, supplies the reply's hidden states, embeddings and
emotion vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from components.contracts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE
from components.errors import ConfigError
from components.model.configuration import EmotionOmniConfig
from components.model.heads import nearest_emotion
from components.model.talker import EmotionOmniTalkerForConditionalGeneration, EmotionOmniTalkerOutput
from components.model.thinker import (
    EmotionOmniThinkerForConditionalGeneration,
    EmotionOmniThinkerGenerateOutput,
    EmotionOmniThinkerOutput,
)
from components.speech.backends import build_token2wav, carry_checkpoint
from components.speech.token2wav import EmotionOmniToken2Wav


@dataclass
class EmotionOmniOutput:
    loss: torch.Tensor | None  # the stage's training loss, when its labels are given
    thinker: EmotionOmniThinkerOutput
    talker: EmotionOmniTalkerOutput | None  # stage 2 only
    mel_loss: torch.Tensor | None  # stage 2 only: the unit -> mel model's L1


@dataclass
class EmotionOmniGenerateOutput:
    thinker: EmotionOmniThinkerGenerateOutput  # reply ids, hidden states, embeddings, emotion vector, labels
    units: list[list[int]] | None  # speech units per reply; None for a text-only model
    audio: list[np.ndarray] | None  # float32 16 kHz per reply (empty when nothing was said)


class EmotionOmniPreTrainedModel(nn.Module):
    """Save and load as a directory of config.json + model.safetensors (transformers' layout)."""

    config: EmotionOmniConfig
    root: Path | None = None  # the directory the model was loaded from: where relative checkpoint paths point

    def save_pretrained(self, out_dir: Path, metadata: dict | None = None) -> Path:
        """Write config.json and model.safetensors (+ an external vocoder checkpoint, copied beside them);
        `metadata` (e.g. training facts) goes into the safetensors header."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = self.config
        if config.token2wav_config is not None:
            config = dataclasses.replace(
                config, token2wav_config=carry_checkpoint(config.token2wav_config, self.root, out_dir)
            )
        config.save(out_dir / MODEL_CONFIG_FILE)
        state = self.state_dict()
        # Clone: under DeepSpeed every parameter is a view into one flat buffer, which safetensors refuses.
        tensors = {name: state[name].detach().cpu().clone().contiguous() for name in unique_state_names(self)}
        save_file(tensors, str(out_dir / MODEL_WEIGHTS_FILE), metadata={k: str(v) for k, v in (metadata or {}).items()})
        return out_dir

    @classmethod
    def from_pretrained(cls, model_dir: Path, device: str = "cpu"):
        """Rebuild the model from its directory; eval mode, on `device`."""
        model_dir = Path(model_dir)
        model = cls(EmotionOmniConfig.load(model_dir / MODEL_CONFIG_FILE), root=model_dir)
        missing, unexpected = model.load_state_dict(load_file(str(model_dir / MODEL_WEIGHTS_FILE)), strict=False)
        missing = [name for name in missing if name in unique_state_names(model)]  # tied aliases are not missing
        if missing or unexpected:
            raise ConfigError(
                f"{model_dir / MODEL_WEIGHTS_FILE} does not match {MODEL_CONFIG_FILE}: missing "
                f"{missing[:5]}, unexpected {unexpected[:5]}; export the model again"
            )
        return model.to(device).eval()


def unique_state_names(model: nn.Module) -> list[str]:
    """State-dict names minus aliases of the same tensor (the LM's tied input/output embeddings)."""
    seen, names = set(), []
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        names.append(name)
    return names


class EmotionOmniForConditionalGeneration(EmotionOmniPreTrainedModel):
    def __init__(self, config: EmotionOmniConfig, root: Path | None = None):
        """`root`: the model directory, for a token2wav checkpoint it names relatively (see save_pretrained)."""
        super().__init__()
        config.validate()
        self.config, self.root = config, root
        self.thinker = EmotionOmniThinkerForConditionalGeneration(config.thinker_config)
        self.talker = self.token2wav = None
        if config.enable_audio_output:
            self.talker = EmotionOmniTalkerForConditionalGeneration(config.talker_config)
            # The local token2wav is a submodule (its weights are ours, trained in stage 2); CosyVoice2 is a
            # frozen external checkpoint, kept as a plain attribute so its weights stay out of our safetensors.
            self.token2wav = build_token2wav(config.token2wav_config, root)

    @property
    def trains_token2wav(self) -> bool:
        """Whether stage 2 trains the token2wav too (the local unit -> mel model) or only the talker."""
        return isinstance(self.token2wav, EmotionOmniToken2Wav)

    @property
    def thinker_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.thinker.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.thinker_frozen:  # stage 2: dropout in a frozen thinker would only add noise to the talker's input
            self.thinker.eval()
        return self

    def forward(
        self,
        input_features: torch.Tensor,
        audio_frames: torch.Tensor,
        response_ids: list[torch.Tensor],
        user_emotion: torch.Tensor | None = None,
        response_emotion: torch.Tensor | None = None,
        speech_units: torch.Tensor | None = None,
        speech_unit_lengths: torch.Tensor | None = None,
        speech_mel: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        force_reference_emotion: torch.Tensor | None = None,
    ) -> EmotionOmniOutput:
        """Stage 1 without `speech_units`: the thinker's multitask loss. Stage 2 with them (B, N) + lengths, the
        reference reply's mel (B, n_mels, N*k) and speaker indices: unit CE (+ MTP) + the mel L1. Items flagged in
        `force_reference_emotion` (restyled replies) are always conditioned on `response_emotion`'s vector."""
        if speech_units is None:
            thinker = self.thinker(input_features, audio_frames, response_ids, user_emotion, response_emotion)
            return EmotionOmniOutput(thinker.loss, thinker, None, None)
        if self.talker is None:
            raise ValueError(
                "this model has no talker (a stage-1 model): build it with talker_config and "
                "token2wav_config to train speech"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.thinker_frozen):
            thinker = self.thinker(input_features, audio_frames, response_ids)
        reference = None if response_emotion is None else self.thinker.emotion_codebook[response_emotion]
        emotion = self.talker.choose_emotion(thinker.emotion_vector, reference, force_reference_emotion)
        talker = self.talker(
            thinker.reply_hidden_states,
            thinker.reply_inputs_embeds,
            thinker.reply_lengths,
            self.thinker.eos_embedding(),
            emotion,
            speech_units,
            speech_unit_lengths,
        )
        mel_loss = None
        if self.trains_token2wav and speech_mel is not None:
            if speaker is None:
                speaker = torch.zeros(len(response_ids), dtype=torch.long, device=emotion.device)
            _, mel_loss = self.token2wav(speech_units, speech_unit_lengths, emotion, speaker, speech_mel)
        loss = talker.loss if mel_loss is None else talker.loss + mel_loss
        return EmotionOmniOutput(loss, thinker, talker, mel_loss)

    @torch.no_grad()
    def generate(
        self,
        input_features: torch.Tensor,
        audio_frames: torch.Tensor,
        return_audio: bool = True,
        speaker: str | None = None,
    ) -> EmotionOmniGenerateOutput:
        """Reply text and emotion for a batch, then (a speaking model, `return_audio`) units and audio."""
        thinker = self.thinker.generate(input_features, audio_frames)
        if not return_audio or self.talker is None:
            return EmotionOmniGenerateOutput(thinker, None, None)
        return EmotionOmniGenerateOutput(thinker, *self.speak(thinker, speaker=speaker))

    @torch.no_grad()
    def speak(
        self, thinker: EmotionOmniThinkerGenerateOutput, speakable: list[bool] | None = None, speaker: str | None = None
    ) -> tuple[list[list[int]], list[np.ndarray]]:
        """Units and audio for the thinker's replies; replies marked unspeakable get none (and cost nothing)."""
        if self.talker is None:
            raise ValueError("this model has no talker (a stage-1 model): it cannot speak")
        lengths = thinker.reply_lengths
        if speakable is not None:
            lengths = lengths * torch.tensor(speakable, dtype=lengths.dtype, device=lengths.device)
        units = self.talker.generate(
            thinker.reply_hidden_states,
            thinker.reply_inputs_embeds,
            lengths,
            self.thinker.eos_embedding(),
            thinker.emotion_vector,
        )
        return units, self.token2wav.synthesize_batch(units, thinker.emotion_vector, speaker)

    @torch.no_grad()
    def speak_text(
        self,
        input_features: torch.Tensor,
        audio_frames: torch.Tensor,
        response_ids: list[torch.Tensor],
        emotion_vector: torch.Tensor | None = None,
        speaker: str | None = None,
    ) -> tuple[list[list[int]], list[np.ndarray], torch.Tensor]:
        """Speak given reply texts (`response_ids`, ending in <|im_end|>) for the user turns, with the emotion
        the thinker predicts or `emotion_vector` (B, E): the talker's speech for a known text, to compare
        with reference audio or to hear one text in several emotions. Returns units, audio, the emotion used."""
        out = self.thinker(input_features, audio_frames, response_ids)
        emotion = out.emotion_vector if emotion_vector is None else emotion_vector.to(out.emotion_vector)
        thinker = EmotionOmniThinkerGenerateOutput(
            [r[r != self.config.thinker_config.eos_token_id].tolist() for r in response_ids],
            out.reply_hidden_states,
            out.reply_inputs_embeds,
            out.reply_lengths,
            emotion,
            nearest_emotion(emotion, self.thinker.emotion_codebook),
            out.user_emotion_logits.argmax(-1),
        )
        units, audio = self.speak(thinker, speaker=speaker)
        return units, audio, emotion

    @torch.no_grad()
    def stream_speech(
        self, thinker: EmotionOmniThinkerGenerateOutput, index: int = 0, speaker: str | None = None
    ) -> Iterator[np.ndarray]:
        """Audio chunks of reply `index` as the talker emits units and the token2wav vocodes them."""
        if self.talker is None:
            raise ValueError("this model has no talker (a stage-1 model): it cannot speak")
        item = slice(index, index + 1)
        emotion = thinker.emotion_vector[item]
        unit_chunks = (
            chunk[0]
            for chunk in self.talker.stream(
                thinker.reply_hidden_states[item],
                thinker.reply_inputs_embeds[item],
                thinker.reply_lengths[item],
                self.thinker.eos_embedding(),
                emotion,
                every=1,
            )
        )
        yield from self.token2wav.stream(unit_chunks, emotion[0], speaker)
