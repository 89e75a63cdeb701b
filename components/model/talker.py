"""The talker: the paper's emotion-conditioned speech generator (stage 2), predicting speech units.

    text states = AdaLN(GatedFusion(h, e), emotion) ++ e_eos        (B, T+1, H_llm), see fusion.py
    pre-net     = causal Llama layers over the text states          (B, T+1, H)
    decoder     = Llama layers over [BOS; pre-net; SOS; units]      cross-entropy on units + EOS
    MTP         = optional chained modules predicting k+1 units further ahead (VocalNet), loss 0.8^(k+1)

Half the training samples use the chunked streaming mask (talker_masks.py), so speech can start before the
text ends. Differences from the reference (SpeechGeneratorARMTP), and why:
- speech positions are numbered from `max_text_positions`, not from the end of the (batch-padded) text, so a
  unit's rotary position never depends on how long the text is: text arriving while units are generated
  (streaming) sees the same positions as training;
- text attends causally under both masks (the reference's full mask lets it look ahead, its inference does
  not); the fusion is used at inference too (the reference's streaming path skips it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig
from transformers.cache_utils import DynamicCache
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm, LlamaRotaryEmbedding

from components.model.configuration import EmotionOmniTalkerConfig
from components.model.fusion import AdaptiveLayerNorm, GatedFusion
from components.model.talker_masks import talker_attention_mask


@dataclass
class EmotionOmniTalkerOutput:
    loss: torch.Tensor | None  # unit CE (+ weighted MTP losses), only when units are given
    unit_loss: torch.Tensor | None  # next-unit cross-entropy alone
    logits: torch.Tensor  # (B, N+1, vocab) at SOS and every unit position
    mtp_losses: list[torch.Tensor]  # per MTP module, unweighted


class EmotionOmniTalkerForConditionalGeneration(nn.Module):
    def __init__(self, config: EmotionOmniTalkerConfig):
        super().__init__()
        config.validate()
        self.config = config
        llm_hidden, hidden = config.thinker_hidden_size, config.hidden_size
        self.fusion = GatedFusion(llm_hidden)
        self.adaln = AdaptiveLayerNorm(llm_hidden, config.emotion_dim)
        # At the paper's scale the talker is as wide as the LM; a tiny talker may be narrower.
        self.input_proj = nn.Linear(llm_hidden, hidden) if llm_hidden != hidden else nn.Identity()
        llama = LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=hidden,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=max(config.prenet_layers, config.decoder_layers),
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_attention_heads,
            max_position_embeddings=config.max_position_embeddings,
            attention_dropout=config.attention_dropout,
            bos_token_id=config.bos_id,
            eos_token_id=config.eos_id,
            pad_token_id=config.pad_id,
        )
        llama._attn_implementation = "sdpa"  # our boolean masks go straight to scaled_dot_product_attention
        self.embed_units = nn.Embedding(config.vocab_size, hidden, padding_idx=config.pad_id)
        self.prenet = nn.ModuleList(LlamaDecoderLayer(llama, i) for i in range(config.prenet_layers))
        self.decoder = nn.ModuleList(LlamaDecoderLayer(llama, i) for i in range(config.decoder_layers))
        self.rotary_emb = LlamaRotaryEmbedding(llama)
        self.norm = LlamaRMSNorm(hidden, eps=llama.rms_norm_eps)
        self.lm_head = nn.Linear(hidden, config.vocab_size)
        self.mtp = nn.ModuleList(
            nn.ModuleDict(
                {
                    "layer": LlamaDecoderLayer(llama, 0),
                    "norm": LlamaRMSNorm(hidden, eps=llama.rms_norm_eps),
                    "head": nn.Linear(hidden, config.vocab_size),
                }
            )
            for _ in range(config.mtp_modules)
        )
        self.dropout = nn.Dropout(config.dropout)
        # Where speech positions start (see the module docstring); text longer than this is cut.
        self.max_text_positions = config.max_position_embeddings // 4

    # --- the condition: reply states -> text states ---
    def choose_emotion(
        self, predicted: torch.Tensor, reference: torch.Tensor | None, force: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Stage 2's emotion condition: the reference reply's with probability reference_emotion_prob (in
        training) or always where `force` (B,) is set, else the thinker's prediction. At inference it is always
        the prediction."""
        if not self.training or reference is None:
            return predicted
        use_reference = torch.rand(predicted.shape[0], device=predicted.device) < self.config.reference_emotion_prob
        if force is not None:
            use_reference = use_reference | force.to(use_reference.device, torch.bool)
        return torch.where(use_reference[:, None], reference.to(predicted.dtype), predicted)

    def text_states(
        self,
        reply_hidden: torch.Tensor,
        reply_embeds: torch.Tensor,
        reply_lengths: torch.Tensor,
        eos_embed: torch.Tensor,
        emotion: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R, H_llm) x 2 -> pre-net output (B, T, H) and its lengths (reply tokens + the text-EOS)."""
        reply_lengths = reply_lengths.clamp(max=self.max_text_positions - 2)  # BOS and text-EOS need room
        width = int(reply_lengths.max()) + 1 if len(reply_lengths) else 1
        x = self.adaln(self.fusion(reply_hidden, reply_embeds), emotion)[:, : width - 1]  # (B, R, H_llm)
        x = F.pad(x, (0, 0, 0, width - x.shape[1]))
        # The text-EOS goes right after each item's last token, without AdaLN (as the reference).
        x[torch.arange(x.shape[0]), reply_lengths] = eos_embed.to(x.dtype)
        x = self.dropout(self.input_proj(x))  # (B, T, H)
        lengths = reply_lengths + 1
        pad = torch.arange(width, device=x.device)[None] >= lengths[:, None]
        mask = torch.ones(width, width, dtype=torch.bool, device=x.device).tril()[None] & ~pad[:, None]
        mask = mask | torch.eye(width, dtype=torch.bool, device=x.device)[None]  # padding sees itself
        positions = torch.arange(1, width + 1, device=x.device)[None].expand(x.shape[0], -1)  # BOS is 0
        return self._layers(self.prenet, x, mask[:, None], positions), lengths

    # --- training ---
    def forward(
        self,
        reply_hidden: torch.Tensor,
        reply_embeds: torch.Tensor,
        reply_lengths: torch.Tensor,
        eos_embed: torch.Tensor,
        emotion: torch.Tensor,
        units: torch.Tensor | None = None,
        unit_lengths: torch.Tensor | None = None,
        chunked: torch.Tensor | None = None,
    ) -> EmotionOmniTalkerOutput:
        """Teacher-forced pass over `units` (B, N) (padding beyond `unit_lengths` is ignored).

        `chunked` (B,) bool picks the streaming mask per item; by default a coin with streaming_mask_prob in
        training and the full mask in eval."""
        c = self.config
        text, text_lengths = self.text_states(reply_hidden, reply_embeds, reply_lengths, eos_embed, emotion)
        batch = text.shape[0]
        if units is None:
            units = torch.zeros(batch, 0, dtype=torch.long, device=text.device)
            unit_lengths = torch.zeros(batch, dtype=torch.long, device=text.device)
        if chunked is None:
            chunked = (
                (torch.rand(batch, device=text.device) < c.streaming_mask_prob)
                if self.training
                else torch.zeros(batch, dtype=torch.bool, device=text.device)
            )
        block = text_lengths + 1  # BOS + text
        speech_lengths = unit_lengths + 1  # SOS + units
        sos = torch.full((batch, 1), c.sos_id, device=text.device)
        speech_in = self.embed_units(torch.cat([sos, units.clamp(max=c.pad_id)], dim=1))  # (B, N+1, H)
        x, positions, mask = self._pack(text, block, speech_in, speech_lengths, chunked)
        total = x.shape[1]
        hidden = self._layers(self.decoder, x, mask, positions)  # (B, L, H)

        # Outputs at SOS and each unit position predict the next unit (EOS after the last one).
        width = int(speech_lengths.max())
        index = (block[:, None] + torch.arange(width, device=x.device)[None]).clamp(max=total - 1)
        gather = index[..., None].expand(-1, -1, hidden.shape[-1])
        logits = self.lm_head(self.norm(hidden.gather(1, gather)))  # (B, N+1, V)
        labels = torch.full((batch, width), c.pad_id, dtype=torch.long, device=x.device)
        for i in range(batch):
            n = int(unit_lengths[i])
            labels[i, :n] = units[i, :n]
            labels[i, n] = c.eos_id
        loss = unit_loss = None
        mtp_losses: list[torch.Tensor] = []
        if int(unit_lengths.sum()) > 0 or units.shape[1] == 0:
            unit_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=c.pad_id)
            loss = unit_loss
            previous = hidden
            for k, module in enumerate(self.mtp):  # module k predicts k + 1 units further ahead
                previous = self._layers([module["layer"]], previous, mask, positions)
                mtp_logits = module["head"](module["norm"](previous.gather(1, gather)))
                shifted = F.pad(labels[:, k + 1 :], (0, k + 1), value=c.pad_id)
                mtp_loss = F.cross_entropy(
                    mtp_logits.reshape(-1, mtp_logits.shape[-1]), shifted.reshape(-1), ignore_index=c.pad_id
                )
                mtp_losses.append(mtp_loss)
                loss = loss + c.mtp_loss_decay ** (k + 1) * mtp_loss
        return EmotionOmniTalkerOutput(loss, unit_loss, logits, mtp_losses)

    def _pack(
        self,
        text: torch.Tensor,
        block: torch.Tensor,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        chunked: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[BOS, text, speech] per item, right-padded: the decoder's input (B, L, H), rotary positions (B, L) and
        attention mask (B, 1, L, L). Text is numbered from 0, speech from max_text_positions."""
        batch = text.shape[0]
        total = int((block + speech_lengths).max())
        x = text.new_zeros(batch, total, text.shape[-1])
        positions = torch.zeros(batch, total, dtype=torch.long, device=text.device)
        bos = self._special_embedding(self.config.bos_id, text.device)
        for i in range(batch):
            lt, ls = int(block[i]), int(speech_lengths[i])
            x[i, 0] = bos
            x[i, 1:lt] = text[i, : lt - 1]
            x[i, lt : lt + ls] = speech[i, :ls]
            positions[i, :lt] = torch.arange(lt)
            positions[i, lt : lt + ls] = self.max_text_positions + torch.arange(ls)
            positions[i, lt + ls :] = self.max_text_positions + ls  # padding: any position
        mask = talker_attention_mask(
            block, speech_lengths, total, chunked, self.config.chunk_units, self.config.chunk_text
        )
        return x, positions, mask

    def _special_embedding(self, unit_id: int, device: torch.device) -> torch.Tensor:
        """BOS/SOS's embedding (H,), through the module: under ZeRO-3 its weight is gathered only while it runs."""
        return self.embed_units(torch.tensor([unit_id], device=device))[0]

    def _layers(
        self, layers, x: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache | None = None
    ) -> torch.Tensor:
        rotary = self.rotary_emb(x, positions)
        for layer in layers:
            x = layer(
                x,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=cache is not None,
                position_embeddings=rotary,
            )
        return x

    # --- inference ---
    @torch.no_grad()
    def stream(
        self,
        reply_hidden: torch.Tensor,
        reply_embeds: torch.Tensor,
        reply_lengths: torch.Tensor,
        eos_embed: torch.Tensor,
        emotion: torch.Tensor,
        max_units: int | None = None,
        every: int | None = None,
    ) -> Iterator[list[list[int]]]:
        """Generate units for a batch, yielding each item's new units every `every` steps (default
        `chunk_units`) and at the end. A streaming vocoder takes `every=1`: its own policy decides when audio is
        due (15 units plus 3 of look-ahead), and waiting for whole talker chunks would hold the first audio back
        until 30 units.

        Greedy, with the reference's optional repetition penalty. An item stops at EOS, at `max_units_per_token`
        units per reply token, or when one unit repeats more than `max_unit_run` times in a row (runaway guards);
        a reply of zero tokens gets no units.
        The full text is known here (the thinker finished first); every unit sees all of it.
        """
        c = self.config
        text, text_lengths = self.text_states(reply_hidden, reply_embeds, reply_lengths, eos_embed, emotion)
        batch, device = text.shape[0], text.device
        block = text_lengths + 1  # BOS + text
        sos = self._special_embedding(c.sos_id, device).expand(batch, 1, -1)
        ones = torch.ones(batch, dtype=torch.long, device=device)
        x, positions, mask = self._pack(text, block, sos, ones, torch.zeros(batch, dtype=torch.bool, device=device))
        valid = torch.arange(x.shape[1], device=device)[None] <= block[:, None]  # keys later steps may see
        cache = DynamicCache()
        hidden = self._layers(self.decoder, x, mask, positions, cache)
        last = hidden[torch.arange(batch), block]  # the SOS outputs, (B, H)

        limit = torch.clamp(reply_lengths * c.max_units_per_token, min=1)
        if max_units is not None:
            limit = limit.clamp(max=max_units)
        done = reply_lengths <= 0  # nothing to say: no units
        counts = torch.zeros(batch, dtype=torch.long, device=device)
        run = torch.zeros(batch, dtype=torch.long, device=device)  # repeats of the last unit
        previous = torch.full((batch,), -1, dtype=torch.long, device=device)
        history: list[torch.Tensor] = []  # (B,) per step; -1 = no unit
        since = 0  # history already yielded
        generated: list[list[int]] = [[] for _ in range(batch)]  # only for the repetition penalty
        step = 0
        while not bool(done.all()):
            logits = self.lm_head(self.norm(last)).float()  # (B, V)
            logits[:, [c.bos_id, c.sos_id, c.pad_id]] = float("-inf")
            if c.repetition_window and c.repetition_penalty != 1.0:
                for i in range(batch):  # as transformers' RepetitionPenaltyLogitsProcessor: always less likely
                    for unit in set(generated[i][-c.repetition_window :]):
                        value = logits[i, unit]
                        logits[i, unit] = value / c.repetition_penalty if value > 0 else value * c.repetition_penalty
            next_units = logits.argmax(-1)
            run = torch.where(next_units == previous, run + 1, torch.ones_like(run))
            previous = next_units
            done = done | (next_units == c.eos_id) | (counts >= limit) | (run > c.max_unit_run)
            history.append(torch.where(done, -1, next_units))
            counts += (~done).long()
            if c.repetition_window and c.repetition_penalty != 1.0:
                for i in range(batch):
                    if not done[i]:
                        generated[i].append(int(next_units[i]))
            step += 1
            if bool(done.all()) or step % (every or c.chunk_units) == 0:
                chunk = torch.stack(history[since:], dim=1).tolist()  # (B, steps since the last yield)
                since = len(history)
                pending = [[u for u in row if u >= 0] for row in chunk]
                if any(pending):
                    yield pending
            if bool(done.all()):
                break
            valid = torch.cat([valid, torch.ones(batch, 1, dtype=torch.bool, device=device)], dim=1)
            step_positions = (self.max_text_positions + step) * torch.ones(batch, 1, dtype=torch.long, device=device)
            step_input = self.embed_units(next_units.clamp(max=c.num_units - 1)[:, None])  # EOS'd items: ignored
            last = self._layers(self.decoder, step_input, valid[:, None, None, :], step_positions, cache)[:, 0]

    def generate(
        self,
        reply_hidden: torch.Tensor,
        reply_embeds: torch.Tensor,
        reply_lengths: torch.Tensor,
        eos_embed: torch.Tensor,
        emotion: torch.Tensor,
        max_units: int | None = None,
    ) -> list[list[int]]:
        """All units per item at once (see `stream`)."""
        units: list[list[int]] = [[] for _ in range(reply_hidden.shape[0])]
        for chunk in self.stream(reply_hidden, reply_embeds, reply_lengths, eos_embed, emotion, max_units):
            units = [u + new for u, new in zip(units, chunk)]
        return units
