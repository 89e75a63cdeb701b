"""The full weights of a DeepSpeed-trained model, whatever the ZeRO stage.

ZeRO-0/1/2 keep every parameter whole on every rank. ZeRO-3 partitions them: outside a module's forward each rank
holds only its slice (shape [0] where it holds none), so saving `module.state_dict()` on rank 0 writes a model that
cannot be loaded. Here every rank joins one gather per parameter (deepspeed.zero.GatheredParameters) and rank 0
copies each to CPU, so at most one whole parameter beyond the partitions is alive at a time on the device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _partitioned(param: torch.Tensor) -> bool:
    return hasattr(param, "ds_id")  # what deepspeed.zero marks a ZeRO-3 parameter with


def gathered_state_dict(module: nn.Module) -> dict[str, torch.Tensor] | None:
    """The module's state dict as whole CPU tensors on rank 0 (None on the other ranks). Every rank must call it.

    Aliases of one parameter (the LM's tied input/output embeddings) appear once, under their first name."""
    import deepspeed

    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if _partitioned(tensor):
            with deepspeed.zero.GatheredParameters([tensor], modifier_rank=None):
                if rank0:
                    state[name] = tensor.detach().cpu().clone()
        elif rank0:
            state[name] = tensor.detach().cpu().clone()
    return state if rank0 else None


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts; under ZeRO-3 a rank's `numel()` is only its slice, `ds_numel` the whole."""
    total = trainable = 0
    for param in module.parameters():
        n = param.ds_numel if _partitioned(param) else param.numel()
        total += n
        trainable += n if param.requires_grad else 0
    return total, trainable
