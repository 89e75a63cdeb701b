"""Joining the process group: this rank's number, the world size and the device it computes on.

Shared by the training worker and the benchmark worker, so both pick devices and backends the same way: on a GPU
node each rank takes the GPU named by torchrun's LOCAL_RANK and talks NCCL; on CPU (local runs, CI) ranks talk gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    device: torch.device


def join_process_group(*, deepspeed: bool, distributed: bool = True) -> Rank:
    """Set up this process's device and join torchrun's process group: through DeepSpeed (`deepspeed`, which
    also sets up its communication) or plain torch.distributed; `distributed=False` is one process, no group."""
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if on_gpu else torch.device("cpu")
    if on_gpu:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use the tensor cores (TF32), as peak_tflops assumes
    backend = "nccl" if on_gpu else "gloo"
    if deepspeed:
        import deepspeed as ds  # heavy; imported only in the training processes

        ds.init_distributed(dist_backend=backend)
    elif distributed:
        dist.init_process_group(backend)
    else:
        return Rank(0, 1, device)
    return Rank(dist.get_rank(), dist.get_world_size(), device)
