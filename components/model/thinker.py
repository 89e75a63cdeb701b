"""EmotionOmniModel: speech + emotion encoders -> adapters -> interleaved into a Qwen2 LM -> text + emotion.

Layout of one training sequence (the LM sees embeddings, not ids, for the audio span):

    "<|im_start|>user\\n" | s0 e0 s1 e1 ... (10 Hz speech/emotion frames) | "<|im_end|>\\n<|im_start|>assistant\\n" | reply <|im_end|>

Loss only on the reply tokens. Differences from the paper: the emotion encoder is trained (no emotion2vec
offline), emotion targets are a fixed codebook, the LM trains fully at tiny scale (LoRA only makes sense on a
pretrained LLM), and speech comes from a prosody-conditioned TTS instead of the stage-2 speech generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM, WhisperConfig, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from components.model.adapters import FrameStackAdapter, interleave
from components.model.configuration import EmotionOmniConfig
from components.model.emotion_encoder import EmotionEncoder
from components.model.heads import (
    EmotionPredictHead, UserEmotionClassifier, emotion_codebook, emotion_loss, nearest_emotion,
)


@dataclass
class EmotionOmniOutput:
    loss: torch.Tensor | None               # total multitask loss, only when labels are given
    text_loss: torch.Tensor | None
    emotion_loss: torch.Tensor | None
    user_emotion_loss: torch.Tensor | None
    logits: torch.Tensor                    # (B, L, vocab)
    emotion_vector: torch.Tensor            # (B, emotion_dim)
    user_emotion_logits: torch.Tensor       # (B, num_user_emotions)


@dataclass
class EmotionOmniGeneration:
    token_ids: list[list[int]]              # reply ids per item, <|im_end|> and padding removed
    emotion_vector: torch.Tensor            # (B, emotion_dim)
    response_emotion: torch.Tensor          # (B,) index into config.response_emotions
    user_emotion: torch.Tensor              # (B,) index into config.user_emotions


def _build_speech_encoder(config: EmotionOmniConfig) -> WhisperEncoder:
    if config.speech_encoder_path:
        # Real loading path for a pretrained checkpoint on local disk; never reaches the hub. The loaded
        # architecture is written back into the config so the exported config.json rebuilds it.
        encoder = WhisperModel.from_pretrained(config.speech_encoder_path, local_files_only=True).encoder
        config.speech_encoder = encoder.config.to_dict()
        config.speech_encoder_path = None
        return encoder
    whisper = WhisperConfig(**{"num_mel_bins": config.n_mels, "max_source_positions": config.mel_frames // 2,
                               **config.speech_encoder})
    if whisper.num_mel_bins != config.n_mels or whisper.max_source_positions * 2 != config.mel_frames:
        raise ValueError(f"speech encoder expects {whisper.num_mel_bins} mels x {whisper.max_source_positions * 2}"
                         f" frames but the front end makes {config.n_mels} x {config.mel_frames}: set n_mels and "
                         "window_seconds to match the checkpoint (Whisper: 30 s)")
    return WhisperEncoder(whisper)


def _build_llm(config: EmotionOmniConfig) -> Qwen2ForCausalLM:
    if config.llm_path:
        llm = Qwen2ForCausalLM.from_pretrained(config.llm_path, local_files_only=True)
        config.llm = llm.config.to_dict()
        config.llm_path = None
        return llm
    qwen = Qwen2Config(**{"vocab_size": config.vocab_size, "pad_token_id": config.pad_token_id,
                          "eos_token_id": config.eos_token_id, "bos_token_id": None, **config.llm})
    if qwen.vocab_size < config.vocab_size:
        raise ValueError(f"llm vocab_size {qwen.vocab_size} is smaller than the tokenizer's {config.vocab_size}")
    return Qwen2ForCausalLM(qwen)


class EmotionOmniModel(nn.Module):
    def __init__(self, config: EmotionOmniConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.speech_encoder = _build_speech_encoder(config)
        self.emotion_encoder = EmotionEncoder(
            config.n_mels, config.emotion_encoder_dim, config.emotion_encoder_layers, config.mel_frames // 2)
        self.llm = _build_llm(config)
        hidden = self.llm.config.hidden_size
        speech_dim = self.speech_encoder.config.d_model
        self.speech_adapter = FrameStackAdapter(speech_dim, config.adapter_hidden, hidden, config.stack_factor)
        self.emotion_adapter = FrameStackAdapter(
            config.emotion_encoder_dim, config.adapter_hidden, hidden, config.stack_factor)
        self.emotion_head = EmotionPredictHead(hidden, config.emotion_dim, config.head_dropout)
        self.user_emotion_classifier = UserEmotionClassifier(
            config.emotion_encoder_dim, len(config.user_emotions))
        self.register_buffer(
            "emotion_codebook", emotion_codebook(len(config.response_emotions), config.emotion_dim))
        self.register_buffer("prompt_prefix", torch.tensor(config.prompt_prefix_ids, dtype=torch.long))
        self.register_buffer("prompt_suffix", torch.tensor(config.prompt_suffix_ids, dtype=torch.long))
        if config.freeze_speech_encoder:
            self.speech_encoder.requires_grad_(False)
        if config.freeze_llm:
            self.llm.requires_grad_(False)

    # --- audio -> LLM embeddings ---
    def encode_audio(self, input_features: torch.Tensor, audio_frames: torch.Tensor):
        """Log-mel (B, n_mels, T_mel) -> interleaved LLM embeddings (B, 2*T10, H) and emotion frames."""
        speech = self.speech_encoder(input_features).last_hidden_state  # (B, T50, d_model)
        emotion = self.emotion_encoder(input_features)                   # (B, T50, emo_dim)
        fused = interleave(self.speech_adapter(speech), self.emotion_adapter(emotion))
        return fused, emotion

    def _sequences(self, audio: torch.Tensor, audio_frames: torch.Tensor,
                   responses: list[torch.Tensor], left_pad: bool):
        """Assemble per-item [prefix | valid audio | suffix | reply] embeddings and pad them into a batch."""
        embed = self.llm.get_input_embeddings()
        prefix, suffix = embed(self.prompt_prefix), embed(self.prompt_suffix)
        items, labels, reply_starts = [], [], []
        for i, reply in enumerate(responses):
            audio_i = audio[i, : 2 * int(audio_frames[i])]
            parts = [prefix, audio_i, suffix, embed(reply)]
            n_context = prefix.shape[0] + audio_i.shape[0] + suffix.shape[0]
            items.append(torch.cat(parts))
            labels.append(torch.cat([torch.full((n_context,), -100, device=reply.device), reply]))
            reply_starts.append(n_context)
        length = max(x.shape[0] for x in items)
        batch = audio.new_zeros(len(items), length, audio.shape[-1])
        mask = torch.zeros(len(items), length, dtype=torch.long, device=audio.device)
        label_batch = torch.full((len(items), length), -100, dtype=torch.long, device=audio.device)
        offsets = []
        for i, (x, y) in enumerate(zip(items, labels)):
            start = length - x.shape[0] if left_pad else 0  # generation needs left padding
            batch[i, start:start + x.shape[0]] = x
            mask[i, start:start + x.shape[0]] = 1
            label_batch[i, start:start + y.shape[0]] = y
            offsets.append(start + reply_starts[i])
        return batch, mask, label_batch, torch.tensor(offsets, device=audio.device)

    def _pool_reply_states(self, hidden: torch.Tensor, reply_start: torch.Tensor,
                           reply_len: torch.Tensor) -> torch.Tensor:
        """Mean of the LM's last hidden states over the first `head_tokens` reply positions."""
        n = self.config.head_tokens
        positions = reply_start[:, None] + torch.arange(n, device=hidden.device)[None]       # (B, n)
        keep = (torch.arange(n, device=hidden.device)[None] < reply_len.clamp(min=1)[:, None]).float()
        positions = positions.clamp(max=hidden.shape[1] - 1)
        states = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))       # (B, n, H)
        return (states * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)

    def forward(self, input_features: torch.Tensor, audio_frames: torch.Tensor,
                response_ids: list[torch.Tensor], user_emotion: torch.Tensor | None = None,
                response_emotion: torch.Tensor | None = None) -> EmotionOmniOutput:
        """Teacher-forced pass. `response_ids` are reply ids ending in <|im_end|>; labels optional."""
        audio, emotion_frames = self.encode_audio(input_features, audio_frames)
        embeds, mask, labels, reply_start = self._sequences(audio, audio_frames, response_ids, left_pad=False)
        out = self.llm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        reply_len = torch.tensor([r.shape[0] for r in response_ids], device=embeds.device)
        vector = self.emotion_head(self._pool_reply_states(out.hidden_states[-1], reply_start, reply_len))
        user_logits = self.user_emotion_classifier(emotion_frames, audio_frames * self.config.stack_factor)

        text_loss = emo_loss = user_loss = loss = None
        if response_emotion is not None and user_emotion is not None:
            shift_logits, shift_labels = out.logits[:, :-1], labels[:, 1:]
            text_loss = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                        shift_labels.reshape(-1), ignore_index=-100)
            emo_loss = emotion_loss(vector, self.emotion_codebook[response_emotion])
            user_loss = F.cross_entropy(user_logits, user_emotion)
            loss = (text_loss + self.config.emotion_weight * emo_loss
                    + self.config.user_emotion_weight * user_loss)
        return EmotionOmniOutput(loss, text_loss, emo_loss, user_loss, out.logits, vector, user_logits)

    @torch.no_grad()
    def generate(self, input_features: torch.Tensor, audio_frames: torch.Tensor,
                 max_new_tokens: int | None = None) -> EmotionOmniGeneration:
        """Greedy reply, then the emotion vector from the reply's first hidden states (as in training)."""
        max_new_tokens = max_new_tokens or self.config.max_response_tokens
        audio, emotion_frames = self.encode_audio(input_features, audio_frames)
        empty = [torch.zeros(0, dtype=torch.long, device=audio.device)] * audio.shape[0]
        embeds, mask, _, _ = self._sequences(audio, audio_frames, empty, left_pad=True)
        generated = self.llm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=self.config.eos_token_id, pad_token_id=self.config.pad_token_id)
        replies = []
        for row in generated.tolist():
            ids = row[: row.index(self.config.eos_token_id)] if self.config.eos_token_id in row else row
            replies.append([t for t in ids if t != self.config.pad_token_id])
        # Second pass over prompt + reply for the head's states, exactly as the teacher-forced pass pools them.
        reply_tensors = [torch.tensor(r, dtype=torch.long, device=audio.device) for r in replies]
        embeds, mask, _, reply_start = self._sequences(audio, audio_frames, reply_tensors, left_pad=False)
        hidden = self.llm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        reply_len = torch.tensor([len(r) for r in replies], device=audio.device)
        vector = self.emotion_head(self._pool_reply_states(hidden, reply_start, reply_len))
        user_logits = self.user_emotion_classifier(emotion_frames, audio_frames * self.config.stack_factor)
        return EmotionOmniGeneration(replies, vector, nearest_emotion(vector, self.emotion_codebook),
                                     user_logits.argmax(-1))
