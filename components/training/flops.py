"""FLOPs accounting: what a training step costs in model FLOPs, and how much of the hardware's peak it used (MFU).

The usual dense-transformer estimate (Kaplan et al.; PaLM's MFU): per token, the forward pass costs 2 FLOPs per
parameter it applies, the backward pass 2 more per parameter it propagates through (activation gradients) and 2 per
trainable parameter (weight gradients). Full training is the familiar 6N; LoRA on a frozen LM is ~4N (the gradient
still flows through the whole LM to reach the adapters); stage 2, whose thinker runs without gradients, backpropagates
only through the talker. Attention's sequence-length term is left out: our sequences are short (< 200 positions),
where it is a few percent. A token is a position the model reads: the LM's audio frames, prompt and reply tokens, and
in stage 2 the talker's speech units as well.
"""

from __future__ import annotations

import os

import torch
from torch import nn

PEAK_TFLOPS_ENV = "OMNI_PEAK_TFLOPS"  # per device; overrides the table (e.g. a GPU the table does not name)

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s per device, no sparsity).
_PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def flops_per_token(model: nn.Module) -> float:
    """2 x applied + 2 x backpropagated + 2 x trainable parameters (see the module docstring)."""
    count = _numel
    applied = sum(count(p) for p in model.parameters())
    trainable = sum(count(p) for p in model.parameters() if p.requires_grad)
    thinker = getattr(model, "thinker", None)
    thinker_trains = thinker is None or any(p.requires_grad for p in thinker.parameters())
    backprop = applied if thinker_trains else applied - sum(count(p) for p in thinker.parameters())
    return 2.0 * applied + 2.0 * backprop + 2.0 * trainable


def _numel(param: torch.Tensor) -> int:
    return param.ds_numel if hasattr(param, "ds_numel") else param.numel()  # ZeRO-3: the whole, not the slice


def batch_tokens(batch: dict) -> int:
    """Positions the model reads in a collated batch: 2 per 10 Hz audio frame (speech + emotion, interleaved),
    the reply tokens, and the speech units when the batch has them. The prompt's few template tokens are left out."""
    tokens = 2 * int(batch["audio_frames"].sum()) + sum(len(r) for r in batch["response_ids"])
    if "speech_unit_lengths" in batch:
        tokens += int(batch["speech_unit_lengths"].sum())
    return tokens


def peak_tflops(precision: str) -> float | None:
    """Peak TFLOP/s of one device at `precision`, or None when unknown (CPU): MFU is then not computed."""
    if os.environ.get(PEAK_TFLOPS_ENV):
        return float(os.environ[PEAK_TFLOPS_ENV])
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((value for key, value in _PEAK_BF16_TFLOPS.items() if key in name), None)
    if peak is None:
        return None
    return peak if precision == "bf16" else peak / 2  # tf32/fp32 tensor cores run at about half the bf16 rate
