"""Where training runs: torchrun ranks in this process's machine, or a Kubeflow Trainer TrainJob on the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.training.config import TrainConfig
from components.training.launch import TrainResult, train

BACKENDS = ("local", "trainjob")


def train_with_backend(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    backend: str = "local",
    trainjob: dict[str, Any] | None = None,
    *,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train on `backend`: "local" runs `config.nproc` torchrun ranks here; "trainjob" runs a TrainJob described
    by `trainjob` (TrainJobConfig fields) on a shared PVC and copies the run back into `run_dir`. Stage 2 also
    takes the stage-1 model (`init_model`) and the speech units. `resume` continues from the newest complete
    checkpoint (in the run directory, or pulled from `config.checkpoint_uri`)."""
    if backend == "local":
        return train(
            Path(dataset_dir), Path(run_dir), config, init_model=init_model, speech_units=speech_units, resume=resume
        )
    if backend == "trainjob":
        from components.cluster.trainjob_config import TrainJobConfig
        from components.training.trainjob_run import train_on_cluster

        return train_on_cluster(
            Path(dataset_dir),
            Path(run_dir),
            config,
            TrainJobConfig.from_dict(trainjob or {}),
            init_model=init_model,
            speech_units=speech_units,
            resume=resume,
        )
    raise ValueError(
        f"train_backend={backend!r}: use 'local' (torchrun in this step) or 'trainjob' "
        "(a Kubeflow Trainer TrainJob on the cluster)"
    )
