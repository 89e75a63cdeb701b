"""Which torch device an inference instance runs on, from what its host (Triton, the CLI) says."""

from __future__ import annotations

import torch

from components.errors import ConfigError


def instance_device(kind: str, device_id: int | str = 0) -> str:
    """Triton's model_instance_kind/_device_id ("CPU"/"GPU", "0") -> a torch device string.

    KIND_GPU asks for CUDA; when the container cannot see a GPU the load fails here with the fix, rather
    than serving on CPU from a pod that reserved (and is billed for) a GPU.
    """
    kind = str(kind).upper()
    if kind in ("CPU", "KIND_CPU", "MODEL"):  # MODEL: the model picks; ours picks CPU
        return "cpu"
    if kind not in ("GPU", "KIND_GPU"):
        raise ConfigError(
            f"instance kind {kind!r} is not CPU or GPU; set instance_group kind in config.pbtxt to KIND_CPU or KIND_GPU"
        )
    if not torch.cuda.is_available():
        raise RuntimeError(
            "config.pbtxt asks for KIND_GPU but torch sees no CUDA device; run the pod with the "
            "chart's gpu profile (a GPU requested, NVIDIA runtime) and a CUDA torch build, or "
            "build the repository with instance kind cpu"
        )
    index = int(device_id)
    if index >= torch.cuda.device_count():
        raise RuntimeError(
            f"Triton assigned GPU {index} but torch sees {torch.cuda.device_count()}; "
            "check NVIDIA_VISIBLE_DEVICES in the pod"
        )
    return f"cuda:{index}"
