"""The thinker: speech + emotion encoders -> adapters -> interleaved into a Qwen2 LM -> reply text + emotion.

Layout of one sequence (the LM sees embeddings, not ids, for the audio span):

    "<|im_start|>user\\n" | s0 e0 s1 e1 ... (10 Hz speech/emotion frames)
        | "<|im_end|>\\n<|im_start|>assistant\\n" | reply <|im_end|>

Loss only on the reply tokens. Besides text and the emotion vector it hands the talker what the paper's speech
generator reads: the LM's last hidden state at each reply token and that token's input embedding.
Differences from the paper: the emotion encoder is trained (no emotion2vec offline), emotion targets are a
fixed codebook, and the LM trains fully at tiny scale (LoRA only makes sense on a pretrained LLM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2ForCausalLM, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from components.audio.features import ENCODER_STRIDE
from components.errors import ConfigError
from components.model.adapters import FrameStackAdapter, interleave
from components.model.configuration import EmotionOmniThinkerConfig
from components.model.emotion_encoder import EmotionEncoder
from components.model.heads import (
    EmotionPredictHead,
    UserEmotionClassifier,
    emotion_codebook,
    emotion_loss,
    nearest_emotion,
)
from components.model.spec_augment import spec_augment


@dataclass
class EmotionOmniThinkerOutput:
    loss: torch.Tensor | None  # total multitask loss, only when labels are given
    text_loss: torch.Tensor | None
    emotion_loss: torch.Tensor | None
    user_emotion_loss: torch.Tensor | None
    logits: torch.Tensor  # (B, L, vocab)
    emotion_vector: torch.Tensor  # (B, emotion_dim)
    user_emotion_logits: torch.Tensor  # (B, num_user_emotions)
    reply_hidden_states: torch.Tensor  # (B, R, H) LM's last hidden state at each reply token, zero-padded
    reply_inputs_embeds: torch.Tensor  # (B, R, H) the LM input embedding of the same tokens
    reply_lengths: torch.Tensor  # (B,) reply tokens per item, <|im_end|> excluded


@dataclass
class EmotionOmniThinkerGenerateOutput:
    token_ids: list[list[int]]  # reply ids per item, <|im_end|> and padding removed
    reply_hidden_states: torch.Tensor  # (B, R, H) as in EmotionOmniThinkerOutput, for token_ids
    reply_inputs_embeds: torch.Tensor  # (B, R, H)
    reply_lengths: torch.Tensor  # (B,) == [len(ids) for ids in token_ids]
    emotion_vector: torch.Tensor  # (B, emotion_dim)
    response_emotion: torch.Tensor  # (B,) index into config.response_emotions
    user_emotion: torch.Tensor  # (B,) index into config.user_emotions


class EmotionOmniThinkerForConditionalGeneration(nn.Module):
    def __init__(self, config: EmotionOmniThinkerConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.speech_encoder = WhisperEncoder(config.whisper_config())
        self.emotion_encoder = EmotionEncoder(
            config.n_mels,
            config.emotion_encoder_dim,
            config.emotion_encoder_layers,
            config.encoder_frames,
            config.emotion_encoder_dropout,
        )
        self.llm = Qwen2ForCausalLM(config.qwen2_config())
        hidden = config.hidden_size
        self.speech_adapter = FrameStackAdapter(
            self.speech_encoder.config.d_model, config.adapter_hidden, hidden, config.stack_factor
        )
        self.emotion_adapter = FrameStackAdapter(
            config.emotion_encoder_dim, config.adapter_hidden, hidden, config.stack_factor
        )
        self.emotion_head = EmotionPredictHead(hidden, config.emotion_dim, config.head_dropout)
        self.user_emotion_classifier = UserEmotionClassifier(config.emotion_encoder_dim, len(config.user_emotions))
        self.register_buffer("emotion_codebook", emotion_codebook(len(config.response_emotions), config.emotion_dim))
        self.register_buffer("prompt_prefix", torch.tensor(config.prompt_prefix_ids, dtype=torch.long))
        self.register_buffer("prompt_suffix", torch.tensor(config.prompt_suffix_ids, dtype=torch.long))

    def load_pretrained_parts(self, speech_encoder_path: str | None = None, llm_path: str | None = None) -> None:
        """Load pretrained Whisper encoder / Qwen2 weights from local checkpoint directories (never the hub).

        The architecture must already match: build the config with
        `EmotionOmniThinkerConfig.with_pretrained_architectures` first.
        """
        parts = (
            (
                speech_encoder_path,
                lambda p: WhisperModel.from_pretrained(p, local_files_only=True).encoder,
                self.speech_encoder,
                "speech encoder",
            ),
            (llm_path, lambda p: Qwen2ForCausalLM.from_pretrained(p, local_files_only=True), self.llm, "LM"),
        )
        for path, load, target, what in parts:
            if not path:
                continue
            source = load(path).state_dict()
            mine = target.state_dict()
            wrong = [k for k in mine if k not in source or source[k].shape != mine[k].shape]
            if wrong:
                raise ConfigError(
                    f"the {what} checkpoint at {path} does not fit the model's architecture (first "
                    f"mismatches: {wrong[:3]}); build the thinker config from the checkpoint with "
                    "EmotionOmniThinkerConfig.with_pretrained_architectures"
                )
            target.load_state_dict({k: source[k] for k in mine})

    # --- audio -> LLM embeddings ---
    def encode_audio(self, input_features: torch.Tensor, audio_frames: torch.Tensor | None = None):
        """Log-mel (B, n_mels, T_mel) -> interleaved LLM embeddings (B, 2*T10, H) and emotion frames. In training,
        with `audio_frames` (valid 10 Hz frames per item), SpecAugment masks the log-mel first."""
        c = self.config
        if self.training and audio_frames is not None and (c.spec_freq_masks or c.spec_time_masks):
            input_features = spec_augment(
                input_features,
                audio_frames * c.stack_factor * ENCODER_STRIDE,
                freq_masks=c.spec_freq_masks,
                freq_width=c.spec_freq_width,
                time_masks=c.spec_time_masks,
                time_width=c.spec_time_width,
            )
        speech = self.speech_encoder(input_features).last_hidden_state  # (B, T50, d_model)
        emotion = self.emotion_encoder(input_features)  # (B, T50, emo_dim)
        fused = interleave(self.speech_adapter(speech), self.emotion_adapter(emotion))
        return fused, emotion

    def _sequences(
        self, audio: torch.Tensor, audio_frames: torch.Tensor, responses: list[torch.Tensor], left_pad: bool
    ):
        """Assemble per-item [prefix | valid audio | suffix | reply] embeddings and pad them into a batch."""
        embed = self.llm.get_input_embeddings()
        prefix, suffix = embed(self.prompt_prefix), embed(self.prompt_suffix)
        items, labels, reply_starts = [], [], []
        for i, reply in enumerate(responses):
            audio_i = audio[i, : 2 * int(audio_frames[i])]
            n_context = prefix.shape[0] + audio_i.shape[0] + suffix.shape[0]
            items.append(torch.cat([prefix, audio_i, suffix, embed(reply)]))
            labels.append(torch.cat([torch.full((n_context,), -100, device=reply.device), reply]))
            reply_starts.append(n_context)
        length = max(x.shape[0] for x in items)
        batch = audio.new_zeros(len(items), length, audio.shape[-1])
        mask = torch.zeros(len(items), length, dtype=torch.long, device=audio.device)
        label_batch = torch.full((len(items), length), -100, dtype=torch.long, device=audio.device)
        offsets = []
        for i, (x, y) in enumerate(zip(items, labels)):
            start = length - x.shape[0] if left_pad else 0  # generation needs left padding
            batch[i, start : start + x.shape[0]] = x
            mask[i, start : start + x.shape[0]] = 1
            label_batch[i, start : start + y.shape[0]] = y
            offsets.append(start + reply_starts[i])
        return batch, mask, label_batch, torch.tensor(offsets, device=audio.device)

    def _pool_reply_states(
        self, hidden: torch.Tensor, reply_start: torch.Tensor, reply_len: torch.Tensor
    ) -> torch.Tensor:
        """Mean of the LM's last hidden states over the first `head_tokens` reply positions."""
        n = self.config.head_tokens
        positions = reply_start[:, None] + torch.arange(n, device=hidden.device)[None]  # (B, n)
        keep = (torch.arange(n, device=hidden.device)[None] < reply_len.clamp(min=1)[:, None]).to(hidden.dtype)
        positions = positions.clamp(max=hidden.shape[1] - 1)
        states = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, n, H)
        return (states * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)

    def _reply_span(
        self, hidden: torch.Tensor, embeds: torch.Tensor, reply_start: torch.Tensor, responses: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hidden states and input embeddings at each reply token, <|im_end|> excluded, zero-padded to (B, R, H)."""
        lengths = torch.tensor([int((r != self.config.eos_token_id).sum()) for r in responses], device=hidden.device)
        width = max(int(lengths.max()) if len(lengths) else 0, 1)
        positions = reply_start[:, None] + torch.arange(width, device=hidden.device)[None]  # (B, R)
        positions = positions.clamp(max=hidden.shape[1] - 1)[..., None].expand(-1, -1, hidden.shape[-1])
        keep = (torch.arange(width, device=hidden.device)[None] < lengths[:, None])[..., None]
        return hidden.gather(1, positions) * keep, embeds.gather(1, positions) * keep, lengths

    def forward(
        self,
        input_features: torch.Tensor,
        audio_frames: torch.Tensor,
        response_ids: list[torch.Tensor],
        user_emotion: torch.Tensor | None = None,
        response_emotion: torch.Tensor | None = None,
    ) -> EmotionOmniThinkerOutput:
        """Teacher-forced pass. `response_ids` are reply ids ending in <|im_end|>; labels optional."""
        return self._teacher_forced(
            *self.encode_audio(input_features, audio_frames), audio_frames, response_ids, user_emotion, response_emotion
        )

    def _teacher_forced(
        self,
        audio: torch.Tensor,
        emotion_frames: torch.Tensor,
        audio_frames: torch.Tensor,
        response_ids: list[torch.Tensor],
        user_emotion: torch.Tensor | None = None,
        response_emotion: torch.Tensor | None = None,
    ) -> EmotionOmniThinkerOutput:
        """`forward` on already-encoded audio (generate encodes it once for both of its passes)."""
        embeds, mask, labels, reply_start = self._sequences(audio, audio_frames, response_ids, left_pad=False)
        out = self.llm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        reply_len = torch.tensor([r.shape[0] for r in response_ids], device=embeds.device)
        vector = self.emotion_head(self._pool_reply_states(hidden, reply_start, reply_len))
        user_logits = self.user_emotion_classifier(emotion_frames, audio_frames * self.config.stack_factor)
        reply_hidden, reply_embeds, reply_lengths = self._reply_span(hidden, embeds, reply_start, response_ids)

        text_loss = emo_loss = user_loss = loss = None
        if response_emotion is not None and user_emotion is not None:
            shift_logits, shift_labels = out.logits[:, :-1], labels[:, 1:]
            text_loss = F.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100
            )
            emo_loss = emotion_loss(vector, self.emotion_codebook[response_emotion])
            user_loss = F.cross_entropy(user_logits, user_emotion)
            loss = text_loss + self.config.emotion_weight * emo_loss + self.config.user_emotion_weight * user_loss
        return EmotionOmniThinkerOutput(
            loss,
            text_loss,
            emo_loss,
            user_loss,
            out.logits,
            vector,
            user_logits,
            reply_hidden,
            reply_embeds,
            reply_lengths,
        )

    def eos_embedding(self) -> torch.Tensor:
        """The LM input embedding of <|im_end|>: the talker appends it after the reply (the text-EOS).

        Looked up through the embedding module, not its weight: under ZeRO-3 a weight is gathered only while its
        module runs."""
        eos = torch.tensor([self.config.eos_token_id], device=self.prompt_prefix.device)
        return self.llm.get_input_embeddings()(eos)[0]  # (H,)

    @torch.no_grad()
    def generate(
        self, input_features: torch.Tensor, audio_frames: torch.Tensor, max_new_tokens: int | None = None
    ) -> EmotionOmniThinkerGenerateOutput:
        """Greedy reply; then one teacher-forced pass over prompt + reply gives the emotion vector (pooled as in
        training) and the reply's hidden states and embeddings for the talker."""
        max_new_tokens = max_new_tokens or self.config.max_response_tokens
        audio, emotion_frames = self.encode_audio(input_features)
        empty = [torch.zeros(0, dtype=torch.long, device=audio.device)] * audio.shape[0]
        embeds, mask, _, _ = self._sequences(audio, audio_frames, empty, left_pad=True)
        generated = self.llm.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=self.config.eos_token_id,
            pad_token_id=self.config.pad_token_id,
        )
        replies = []
        for row in generated.tolist():
            ids = row[: row.index(self.config.eos_token_id)] if self.config.eos_token_id in row else row
            replies.append([t for t in ids if t != self.config.pad_token_id])
        reply_tensors = [torch.tensor(r, dtype=torch.long, device=audio.device) for r in replies]
        out = self._teacher_forced(audio, emotion_frames, audio_frames, reply_tensors)
        return EmotionOmniThinkerGenerateOutput(
            replies,
            out.reply_hidden_states,
            out.reply_inputs_embeds,
            out.reply_lengths,
            out.emotion_vector,
            nearest_emotion(out.emotion_vector, self.emotion_codebook),
            out.user_emotion_logits.argmax(-1),
        )
