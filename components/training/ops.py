"""DeepSpeed's CPU communication op, compiled once at install instead of in the first training run.

On CPU, DeepSpeed JIT-compiles its shared-memory collective (`deepspeed_shm_comm`) with torch's cpp_extension the
first time a rank starts, into TORCH_EXTENSIONS_DIR. That took 73 s in a fresh clone's test run on the 2-core
machine (2026-11-29), and meanwhile every other rank and every other training run on the machine waits on its
build lock. `infra/setup.sh` runs this once after installing, so the first `omni train`, demo or test run only
loads the op. On a CUDA machine the ranks use NCCL, not this op, and there is nothing to build.

    python -m components.training.ops
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from components.training.build_lock import clear_stale_build_locks

# Where the ranks' compiled ops live (launch.worker_env): a stable directory makes the build a one-off.
EXTENSIONS_DIR = Path.home() / ".cache" / "omni" / "torch_extensions"


def build_cpu_ops() -> str:
    """Compile DeepSpeed's CPU communication op, or find it compiled; say what happened and how long it took."""
    import torch

    if torch.cuda.is_available():
        return "a CUDA machine: its ranks use NCCL, no CPU op to build"
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(EXTENSIONS_DIR))
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # what launch.worker_env gives the ranks on a CPU machine
    started = time.perf_counter()
    clear_stale_build_locks(Path(os.environ["TORCH_EXTENSIONS_DIR"]))
    from deepspeed.comm.torch import build_shm_op

    if build_shm_op() is None:  # the ranks then fall back to gloo's own collectives, slower but correct
        return "DeepSpeed reports its CPU communication op as incompatible here: the ranks will use gloo's"
    return f"DeepSpeed's CPU communication op ready in {time.perf_counter() - started:.1f} s"


if __name__ == "__main__":
    print(build_cpu_ops())
