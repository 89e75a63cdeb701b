"""CosyVoice2's flow encoder: UpsampleConformerEncoder (tokens at 25 Hz -> hidden states at 50 Hz).

    linear embed -> pre-lookahead conv (sees 3 future tokens) -> N conformer layers
    -> nearest 2x upsample + causal conv -> linear embed -> 4 conformer layers -> LayerNorm

Module and parameter names follow the reference (cosyvoice/transformer/*.py, from WeNet/ESPnet) so its
`flow.pt` loads with strict=True: `embed.out.0`, `encoders.3.self_attn.linear_pos`, `up_layer.conv`, ...

Differences from the reference, none of which changes a weight name or the math at inference:
- Only CosyVoice2's configuration is built (linear input layer, ESPnet relative positions, relative
  self-attention, no macaron FFN, no conv module; config.EncoderConfig refuses anything else).
- The pre-lookahead and upsample layers are sized by `output_size`; the reference hard-codes 512, which is
  CosyVoice2's output_size, so the real checkpoint is unaffected and tiny test models become possible.
- Attention is always full-context (the reference's `streaming=False`); its chunk masks only matter for
  the cache-based streaming path, which this backend does not use (see token2wav.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.speech.cosyvoice2.config import EncoderConfig

# Number of conformer layers after the upsampling; fixed in the reference, not a YAML key.
UP_BLOCKS = 4


def pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, 1, max_len) bool, True at real (not padded) positions."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


class EspnetRelPositionalEncoding(nn.Module):
    """Scales inputs by sqrt(d) and returns sinusoidal encodings of relative offsets T-1 .. -(T-1).

    The table is recomputed when a longer input arrives and is not a parameter (no state-dict entry).
    """

    def __init__(self, d_model: int, dropout_rate: float):
        super().__init__()
        self.d_model, self.xscale = d_model, math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)
        self._table = torch.zeros(1, 0, d_model)

    def _extend(self, length: int, like: torch.Tensor) -> None:
        if self._table.size(1) >= 2 * length - 1:
            self._table = self._table.to(like)
            return
        position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / self.d_model))
        positive, negative = torch.zeros(length, self.d_model), torch.zeros(length, self.d_model)
        positive[:, 0::2], positive[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        negative[:, 0::2], negative[:, 1::2] = torch.sin(-position * div), torch.cos(-position * div)
        # Offsets from +(T-1) down to -(T-1): left keys first, as the relative-shift trick expects.
        self._table = torch.cat([positive.flip(0), negative[1:]]).unsqueeze(0).to(like)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        self._extend(length, x)
        centre = self._table.size(1) // 2
        pos_emb = self._table[:, centre - length + 1 : centre + length]  # (1, 2T-1, D)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


class LinearNoSubsampling(nn.Module):
    """Linear + LayerNorm input layer (keeps the frame rate), then the positional encoding."""

    def __init__(self, idim: int, odim: int, dropout_rate: float, positional_dropout_rate: float):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5), nn.Dropout(dropout_rate))
        self.pos_enc = EspnetRelPositionalEncoding(odim, positional_dropout_rate)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pos_enc(self.out(x))


class RelPositionMultiHeadedAttention(nn.Module):
    """Transformer-XL style self-attention: content score (q + u)k^T plus position score (q + v)p^T."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, key_bias: bool = True):
        super().__init__()
        self.h, self.d_k = n_head, n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat, bias=key_bias)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = nn.Dropout(dropout_rate)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    @staticmethod
    def _relative_shift(scores: torch.Tensor) -> torch.Tensor:
        """(B, H, T, 2T-1) scores against offsets -> (B, H, T, T) scores against key positions."""
        b, h, t, n = scores.shape
        padded = torch.cat([scores.new_zeros(b, h, t, 1), scores], dim=-1)  # (B, H, T, 2T)
        shifted = padded.view(b, h, n + 1, t)[:, :, 1:].reshape(b, h, t, n)
        return shifted[..., : n // 2 + 1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)  # (B, T, H, d)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)  # (B, H, T, d)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)  # (1, H, 2T-1, d)
        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))  # (B, H, T, T)
        position = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))  # (B, H, T, 2T-1)
        if position.shape != content.shape:
            position = self._relative_shift(position)
        scores = (content + position) / math.sqrt(self.d_k)
        blocked = ~mask.unsqueeze(1)  # (B, 1, 1|T, T)
        attn = torch.softmax(scores.masked_fill(blocked, -float("inf")), dim=-1).masked_fill(blocked, 0.0)
        out = torch.matmul(self.dropout(attn), v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(out)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim: int, hidden_units: int, dropout_rate: float):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.activation = nn.SiLU()  # "swish", CosyVoice2's activation_type
        self.dropout = nn.Dropout(dropout_rate)
        self.w_2 = nn.Linear(hidden_units, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class ConformerEncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward (the conformer layer with macaron and conv module switched off)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        size = config.output_size
        self.self_attn = RelPositionMultiHeadedAttention(
            config.attention_heads, size, config.attention_dropout_rate, config.key_bias
        )
        self.feed_forward = PositionwiseFeedForward(size, config.linear_units, config.dropout_rate)
        self.norm_ff = nn.LayerNorm(size, eps=1e-5)
        self.norm_mha = nn.LayerNorm(size, eps=1e-5)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.normalize_before = config.normalize_before

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        h = self.norm_mha(x) if self.normalize_before else x
        x = x + self.dropout(self.self_attn(h, mask, pos_emb))
        if not self.normalize_before:
            x = self.norm_mha(x)
        h = self.norm_ff(x) if self.normalize_before else x
        x = x + self.dropout(self.feed_forward(h))
        return x if self.normalize_before else self.norm_ff(x)


class PreLookaheadLayer(nn.Module):
    """Residual conv pair whose first conv looks `pre_lookahead_len` tokens ahead; the second is causal.

    In streaming the last tokens are not final yet: they arrive as `context`, feeding only this look-ahead.
    """

    def __init__(self, channels: int, pre_lookahead_len: int):
        super().__init__()
        self.pre_lookahead_len = pre_lookahead_len
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=pre_lookahead_len + 1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, C, T)
        known = 0 if context is None else context.size(1)
        if known:
            h = torch.cat([h, context.transpose(1, 2)], dim=2)
        h = F.leaky_relu(self.conv1(F.pad(h, (0, self.pre_lookahead_len - known))))
        h = self.conv2(F.pad(h, (self.conv2.kernel_size[0] - 1, 0)))
        return h.transpose(1, 2) + x


class Upsample1D(nn.Module):
    """Nearest-neighbour x`stride` then a causal conv (kernel 2*stride+1, left padding only)."""

    def __init__(self, channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(channels, out_channels, stride * 2 + 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return self.conv(F.pad(x, (self.stride * 2, 0))), lengths * self.stride


class UpsampleConformerEncoder(nn.Module):
    """(B, T, input_size) token embeddings -> (B, 2T, output_size) hidden states and their (B, 1, 2T) mask."""

    def __init__(self, config: EncoderConfig, pre_lookahead_len: int):
        super().__init__()
        size = config.output_size
        self._output_size = size
        self.embed = LinearNoSubsampling(config.input_size, size, config.dropout_rate, config.positional_dropout_rate)
        self.normalize_before = config.normalize_before
        self.after_norm = nn.LayerNorm(size, eps=1e-5)
        self.pre_lookahead_layer = PreLookaheadLayer(size, pre_lookahead_len)
        self.encoders = nn.ModuleList(ConformerEncoderLayer(config) for _ in range(config.num_blocks))
        self.up_layer = Upsample1D(size, size, stride=2)
        # The reference builds up_embed from input_size too; CosyVoice2 has input_size == output_size.
        self.up_embed = LinearNoSubsampling(
            config.input_size, size, config.dropout_rate, config.positional_dropout_rate
        )
        self.up_encoders = nn.ModuleList(ConformerEncoderLayer(config) for _ in range(UP_BLOCKS))

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self, xs: torch.Tensor, xs_lens: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`context`: (B, L, input_size) embeddings of look-ahead tokens that are not final yet (streaming)."""
        masks = pad_mask(xs_lens, xs.size(1))
        xs, pos_emb = self.embed(xs)
        if context is not None and context.size(1):
            context, _ = self.embed(context)  # same projection; its positions are never attended to
        xs = self.pre_lookahead_layer(xs, context)
        for layer in self.encoders:
            xs = layer(xs, masks, pos_emb)
        xs, xs_lens = self.up_layer(xs.transpose(1, 2), xs_lens)
        xs = xs.transpose(1, 2)  # (B, 2T, D)
        masks = pad_mask(xs_lens, xs.size(1))
        xs, pos_emb = self.up_embed(xs)
        for layer in self.up_encoders:
            xs = layer(xs, masks, pos_emb)
        if self.normalize_before:
            xs = self.after_norm(xs)
        return xs, masks
