"""CosyVoice2's flow estimator: CausalConditionalDecoder, a 1-D U-Net of causal ResNet + transformer blocks.

Input per step: [x_t; mu; speaker; prompt condition] (4 x 80 channels) and the ODE time t; output: the
velocity dx/dt (80 channels). Names follow the reference (cosyvoice/flow/decoder.py, built on Matcha-TTS's
decoder blocks and diffusers' BasicTransformerBlock/Attention) so `flow.pt`'s `decoder.estimator.*` entries load
with strict=True: `down_blocks.0.0.block1.block.0.weight`, `mid_blocks.3.1.0.attn1.to_q.weight`,
`up_blocks.0.1.0.ff.net.0.proj.weight`, `final_proj.weight`, ...

Differences from the reference: diffusers is not a dependency here, so the attention and feed-forward blocks
are re-implemented with the parameter layout of diffusers' `Attention` (to_q/to_k/to_v without bias, to_out.0
with bias) and `FeedForward` with `gelu` (net.0.proj, net.2); only `act_fn: gelu` (CosyVoice2's) is built.
Attention is full-context (the reference's `streaming=False`) and the KV/conv caches of its chunked path are
not implemented. Unlike the reference's causal forward, a multi-level `channels` list (with real down/up
sampling) also runs; CosyVoice2 itself uses one level (`channels: [256]`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.speech.cosyvoice2.config import EstimatorConfig

_MASKED = -1.0e10  # additive attention bias for padded keys, as the reference's mask_to_bias


class SinusoidalPosEmb(nn.Module):
    """(B,) ODE times in [0, 1] -> (B, dim) sinusoidal embedding; times are scaled by 1000 first."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalPosEmb needs an even dim, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor, scale: float = 1000.0) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -(math.log(10000) / (half - 1)))
        angles = scale * t.reshape(-1).float().unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(sample)))


class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int):
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)


class CausalConv1d(nn.Conv1d):
    """Stride-1 conv padded on the left only, so frame t never sees frames after t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size)
        self.causal_padding = kernel_size - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.causal_padding, 0)))


class CausalBlock1D(nn.Module):
    """Causal conv -> LayerNorm over channels -> Mish, masked before and after."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.block = nn.Sequential(
            CausalConv1d(dim, dim_out, 3), Transpose(1, 2), nn.LayerNorm(dim_out), Transpose(1, 2), nn.Mish()
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class CausalResnetBlock1D(nn.Module):
    """Two causal blocks with the time embedding added between them, plus a 1x1 residual projection."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = CausalBlock1D(dim, dim_out)
        self.block2 = CausalBlock1D(dim_out, dim_out)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.mlp(time_emb).unsqueeze(-1)
        return self.block2(h, mask) + self.res_conv(x * mask)


class Downsample1D(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(channels, channels, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Attention(nn.Module):
    """Multi-head self-attention with diffusers' parameter layout; `bias` is (B, T, T) additive."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(query_dim, inner, bias=False)
        self.to_v = nn.Linear(query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(dropout)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, -1).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(1))  # (B, H, T, d)
        return self.to_out[1](self.to_out[0](out.transpose(1, 2).reshape(b, t, -1)))


class GELU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, dropout: float, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GELU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


class CausalBasicTransformerBlock(nn.Module):
    """Pre-norm self-attention + GELU feed-forward (diffusers' BasicTransformerBlock without cross-attention)."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, num_attention_heads, attention_head_dim, dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), bias)
        return x + self.ff(self.norm3(x))


class CausalConditionalDecoder(nn.Module):
    """forward(x, mask, mu, t, spks, cond) -> (B, out_channels, T) velocity, zero at padded frames."""

    def __init__(self, config: EstimatorConfig):
        super().__init__()
        c = config
        channels = tuple(c.channels)
        self.in_channels, self.out_channels = c.in_channels, c.out_channels
        self.time_embeddings = SinusoidalPosEmb(c.in_channels)
        time_embed_dim = channels[0] * 4
        self.time_mlp = TimestepEmbedding(c.in_channels, time_embed_dim)

        def transformers(dim: int) -> nn.ModuleList:
            return nn.ModuleList(
                CausalBasicTransformerBlock(dim, c.num_heads, c.attention_head_dim, c.dropout)
                for _ in range(c.n_blocks)
            )

        self.down_blocks, self.mid_blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        output_channel = c.in_channels
        for i, width in enumerate(channels):
            input_channel, output_channel = output_channel, width
            last = i == len(channels) - 1
            self.down_blocks.append(
                nn.ModuleList(
                    [
                        CausalResnetBlock1D(input_channel, output_channel, time_embed_dim),
                        transformers(output_channel),
                        CausalConv1d(output_channel, output_channel, 3) if last else Downsample1D(output_channel),
                    ]
                )
            )
        for _ in range(c.num_mid_blocks):
            self.mid_blocks.append(
                nn.ModuleList(
                    [CausalResnetBlock1D(channels[-1], output_channel, time_embed_dim), transformers(output_channel)]
                )
            )
        widths = channels[::-1] + (channels[0],)
        for i in range(len(widths) - 1):
            output_channel = widths[i + 1]
            last = i == len(widths) - 2
            self.up_blocks.append(
                nn.ModuleList(
                    [
                        CausalResnetBlock1D(widths[i] * 2, output_channel, time_embed_dim),
                        transformers(output_channel),
                        CausalConv1d(output_channel, output_channel, 3) if last else Upsample1D(output_channel),
                    ]
                )
            )
        self.final_block = CausalBlock1D(widths[-1], widths[-1])
        self.final_proj = nn.Conv1d(widths[-1], c.out_channels, 1)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        # The reference's init; it only matters for freshly built (test) models, real weights overwrite it.
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def _attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, T) frame mask -> (B, T, T) additive bias: every query sees every real key (full context)."""
        keys = mask.to(dtype).expand(-1, mask.size(-1), -1)
        return (1.0 - keys) * _MASKED

    def _transform(self, blocks: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, C)
        bias = self._attention_bias(mask, h.dtype)
        for block in blocks:
            h = block(h, bias)
        return h.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """x, mu, cond: (B, 80, T); mask: (B, 1, T); t: (B,); spks: (B, 80)."""
        t = self.time_mlp(self.time_embeddings(t).to(x.dtype))
        x = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.size(-1)), cond], dim=1)  # (B, 320, T)
        hiddens, masks = [], [mask]
        for resnet, transformer_blocks, downsample in self.down_blocks:
            mask_down = masks[-1]
            x = self._transform(transformer_blocks, resnet(x, mask_down, t), mask_down)
            hiddens.append(x)  # skip connection
            x = downsample(x * mask_down)
            masks.append(mask_down[:, :, ::2])
        masks = masks[:-1]
        mask_mid = masks[-1]
        for resnet, transformer_blocks in self.mid_blocks:
            x = self._transform(transformer_blocks, resnet(x, mask_mid, t), mask_mid)
        for resnet, transformer_blocks, upsample in self.up_blocks:
            mask_up, skip = masks.pop(), hiddens.pop()
            x = torch.cat([x[:, :, : skip.size(-1)], skip], dim=1)
            x = self._transform(transformer_blocks, resnet(x, mask_up, t), mask_up)
            x = upsample(x * mask_up)
        x = self.final_block(x, mask_up)
        return self.final_proj(x * mask_up) * mask
