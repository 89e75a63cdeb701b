"""CosyVoice2's flow: speech tokens + speaker prompt -> 80-bin mel at 50 frames/s (2 frames per token).

    tokens = [prompt tokens; tokens] -> embedding -> UpsampleConformerEncoder -> Linear -> mu (80 x 2T)
    mel = Euler ODE from fixed noise to data, velocity from CausalConditionalDecoder given
          [x_t; mu; speaker embedding; prompt mel (zeros after the prompt)], with classifier-free guidance
    return the frames after the prompt's

Names follow the reference (cosyvoice/flow/flow.py CausalMaskedDiffWithXvec, flow_matching.py
CausalConditionalCFM) so `flow.pt` loads with strict=True: `input_embedding`, `spk_embed_affine_layer`,
`encoder.*`, `encoder_proj`, `decoder.estimator.*`.

Differences from the reference:
- The ODE's starting noise is fixed, as in the reference (`rand_noise`, 300 s of it drawn once), but drawn
  from its own generator seeded with `NOISE_SEED` rather than from the global RNG state at YAML load, so
  the exact noise differs from the reference's while having the same role: a given position always starts
  from the same noise, so re-running a longer prefix (streaming) reproduces the earlier frames closely.
- Inference only (no `forward` training loss) and no fp16 switch; the reference's TensorRT/ONNX estimator
  paths are not implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.errors import ConfigError
from components.speech.cosyvoice2.config import CFMConfig, FlowConfig
from components.speech.cosyvoice2.conformer import UpsampleConformerEncoder, pad_mask
from components.speech.cosyvoice2.flow_decoder import CausalConditionalDecoder

NOISE_SEED = 1986  # the reference YAML's seed
NOISE_FRAMES = 50 * 300  # 300 s of 50 Hz mel frames: the reference's `rand_noise` length


class CausalConditionalCFM(nn.Module):
    """Conditional flow matching sampler: `forward` integrates dx/dt = estimator(x, t | mu, spks, cond)."""

    def __init__(self, config: CFMConfig, estimator: CausalConditionalDecoder, mel_channels: int):
        super().__init__()
        self.t_scheduler = config.t_scheduler
        self.inference_cfg_rate = config.inference_cfg_rate
        self.estimator = estimator
        noise = torch.randn(1, mel_channels, NOISE_FRAMES, generator=torch.Generator().manual_seed(NOISE_SEED))
        self.register_buffer("rand_noise", noise, persistent=False)  # moves with .to(), never in the state dict

    @torch.inference_mode()
    def forward(
        self,
        mu: torch.Tensor,
        mask: torch.Tensor,
        n_timesteps: int,
        spks: torch.Tensor,
        cond: torch.Tensor,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """mu, cond: (1, 80, T); mask: (1, 1, T); spks: (1, 80) -> mel (1, 80, T)."""
        frames = mu.size(2)
        if frames > self.rand_noise.size(2):
            raise ConfigError(
                f"flow input is {frames} mel frames ({frames / 50:.0f} s); CosyVoice2 supports at most "
                f"{self.rand_noise.size(2)} ({NOISE_FRAMES // 50} s) including the prompt: split the "
                "utterance or use a shorter prompt"
            )
        x = self.rand_noise[:, :, :frames].to(mu.dtype) * temperature
        t_span = torch.linspace(0, 1, n_timesteps + 1, device=mu.device, dtype=mu.dtype)
        if self.t_scheduler == "cosine":
            t_span = 1 - torch.cos(t_span * 0.5 * torch.pi)  # smaller steps near the noise end
        return self._solve_euler(x, t_span, mu, mask, spks, cond)

    def _solve_euler(
        self,
        x: torch.Tensor,
        t_span: torch.Tensor,
        mu: torch.Tensor,
        mask: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        guided = self.inference_cfg_rate > 0
        if guided:
            # Row 0 conditioned, row 1 unconditioned (mu, speaker and prompt zeroed, as in training's dropout).
            mu, spks, cond = (torch.cat([v, torch.zeros_like(v)]) for v in (mu, spks, cond))
            mask = torch.cat([mask, mask])
        for step in range(1, len(t_span)):
            t, dt = t_span[step - 1], t_span[step] - t_span[step - 1]
            x_in = torch.cat([x, x]) if guided else x
            velocity = self.estimator(x_in, mask, mu, t.expand(x_in.size(0)), spks, cond)
            if guided:
                conditioned, unconditioned = velocity.chunk(2)
                velocity = (1.0 + self.inference_cfg_rate) * conditioned - self.inference_cfg_rate * unconditioned
            x = x + dt * velocity
        return x.float()


class CausalMaskedDiffWithXvec(nn.Module):
    """`inference(tokens, prompt_tokens, prompt_feat, embedding, ...)` -> (1, 80, 2 * new tokens) mel."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.output_size = config.output_size
        self.token_mel_ratio = config.token_mel_ratio
        self.pre_lookahead_len = config.pre_lookahead_len
        self.input_embedding = nn.Embedding(config.vocab_size, config.input_size)
        self.spk_embed_affine_layer = nn.Linear(config.spk_embed_dim, config.output_size)
        self.encoder = UpsampleConformerEncoder(config.encoder, config.pre_lookahead_len)
        self.encoder_proj = nn.Linear(self.encoder.output_size(), config.output_size)
        estimator = CausalConditionalDecoder(config.estimator)
        self.decoder = CausalConditionalCFM(config.decoder, estimator, config.output_size)

    @torch.inference_mode()
    def inference(
        self,
        token: torch.Tensor,
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        n_timesteps: int = 10,
        finalize: bool = True,
    ) -> torch.Tensor:
        """Mel for `token` (1, T) spoken like the prompt.

        prompt_token: (1, P) tokens of the prompt audio (P may be 0); prompt_feat: (1, 2P, 80) its mel;
        embedding: (1, 192) its CAM++ speaker embedding (zeros for none). With `finalize=False` the last
        `pre_lookahead_len` tokens only serve as look-ahead context and get no frames (streaming).
        Returns (1, 80, token_mel_ratio * (T or T - pre_lookahead_len)).
        """
        if token.size(0) != 1:
            raise ValueError(f"flow inference takes one utterance at a time, got a batch of {token.size(0)}")
        embedding = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))  # (1, 80)
        tokens = torch.cat([prompt_token, token], dim=1).long()
        embedded = self.input_embedding(tokens.clamp(min=0))  # (1, P+T, D)
        context = None
        if not finalize:
            embedded, context = embedded[:, : -self.pre_lookahead_len], embedded[:, -self.pre_lookahead_len :]
        lengths = torch.tensor([embedded.size(1)], device=embedded.device)
        h, _ = self.encoder(embedded, lengths, context)
        h = self.encoder_proj(h)  # (1, 2(P+T'), 80)
        prompt_frames = prompt_feat.size(1)
        conds = torch.zeros(1, h.size(1), self.output_size, device=h.device, dtype=h.dtype)
        conds[:, :prompt_frames] = prompt_feat
        mask = pad_mask(torch.tensor([h.size(1)], device=h.device), h.size(1)).to(h.dtype)
        feat = self.decoder(
            mu=h.transpose(1, 2).contiguous(),
            mask=mask,
            n_timesteps=n_timesteps,
            spks=embedding,
            cond=conds.transpose(1, 2),
        )
        return feat[:, :, prompt_frames:]
