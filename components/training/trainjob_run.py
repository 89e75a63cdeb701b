"""Training as a Kubeflow Trainer v2 TrainJob: the same workers as the local launcher, on N nodes of the cluster.

    job = TrainJobConfig(cluster=ClusterSettings(shared_pvc="omni-shared"), num_nodes=2)
    result = train_on_cluster(DATA, OUT, TrainConfig(), job)

`train_on_cluster` stages the dataset on the shared PVC; `run_trainjob` prepares the run dir there with the same
`prepare_run` and resume check as the local launcher (tokenizer + train_config.json), then the cluster client
(`components.cluster.run`) creates the TrainJob, follows it and cleans it up. Both return the same TrainResult as
the local `train()`. A job that fails raises the cluster's TrainJobError, quoting the first error a rank printed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import TextIO

from components.cluster.kube import current_namespace
from components.cluster.run import run_to_completion
from components.cluster.trainjob_config import TrainJobConfig
from components.cluster.trainjob_spec import TRAIN_METRICS_PORT, build_trainjob, job_name
from components.contracts import TRAIN_SUMMARY_FILE
from components.training.config import TrainConfig
from components.training.launch import TrainingError, TrainResult, first_rank_error, resume_point
from components.training.prepare import prepare_run


def run_trainjob(
    config: TrainJobConfig,
    run_dir: Path,
    dataset_dir: Path,
    train_config: TrainConfig | None = None,
    *,
    name: str | None = None,
    api_client=None,
    out: TextIO | None = None,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train on the cluster: `run_dir` and `dataset_dir` are on the shared PVC, mounted here at the same path.

    Prepares run_dir (tokenizer + train_config.json), creates the TrainJob, streams its pods' logs to `out`
    (stderr by default), waits for it and returns the same TrainResult as the local `train()`.
    """
    start = time.time()
    run_dir, dataset_dir = Path(run_dir), Path(dataset_dir)
    namespace = config.namespace or current_namespace()
    body = build_trainjob(config, run_dir, dataset_dir, name=name, namespace=namespace, resume=resume)  # validates
    train_config = train_config or TrainConfig()
    # Stage 2 copies the stage-1 model and the units into the run dir, on the PVC, where every node reads them.
    prepare_run(dataset_dir, run_dir, train_config, init_model, speech_units, resume=resume)
    resume_point(run_dir, train_config, config.num_nodes * config.ranks_per_node, resume)
    run_to_completion(config, body, api_client=api_client, out=out, root_cause=first_rank_error)

    summary_path = run_dir / TRAIN_SUMMARY_FILE
    if not summary_path.is_file():
        cluster = config.cluster
        raise TrainingError(
            f"TrainJob {namespace}/{body['metadata']['name']} completed but {summary_path} is missing: do the "
            f"launcher and the trainer pods mount the same PVC ({cluster.shared_pvc}) at {cluster.shared_mount_path}?"
        )
    return TrainResult.of_run(run_dir, start)


def train_on_cluster(
    dataset_dir: Path,
    out_dir: Path,
    train_config: TrainConfig | None = None,
    config: TrainJobConfig | None = None,
    *,
    api_client=None,
    out: TextIO | None = None,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Stage `dataset_dir` on the shared PVC, train there with a TrainJob, copy the run dir back to `out_dir`.

    The PVC must be mounted here at the cluster's shared mount path (the pipeline's train step mounts it). The
    staging directory MOUNT/runs/<job name> is removed after a successful run and kept after a failure, for
    inspection.
    """
    start = time.time()
    config = config or TrainJobConfig()
    train_config = train_config or TrainConfig()
    config.validate()
    if not config.gpus_per_node and not config.procs_per_node:  # CPU-only nodes: nproc ranks each, as locally
        config = dataclasses.replace(config, procs_per_node=train_config.nproc)
    if not train_config.metrics_port:  # where the bootstrap's ServiceMonitor scrapes rank 0
        train_config = dataclasses.replace(train_config, metrics_port=TRAIN_METRICS_PORT)
    mount = Path(config.cluster.shared_mount_path)
    if not mount.is_dir():
        raise TrainingError(
            f"{mount} does not exist here: the launcher must mount PVC {config.cluster.shared_pvc!r} at the path "
            "the TrainJob pods use (pipeline: ClusterSettings.shared_pvc / shared_mount_path)"
        )
    name = job_name(config.name_prefix)
    stage = mount / "runs" / name
    shutil.copytree(dataset_dir, stage / "dataset")
    result = run_trainjob(
        config,
        stage / "run",
        stage / "dataset",
        train_config,
        name=name,
        api_client=api_client,
        out=out,
        init_model=init_model,
        speech_units=speech_units,
        resume=resume,
    )
    out_dir = Path(out_dir)
    shutil.copytree(stage / "run", out_dir, dirs_exist_ok=True)
    shutil.rmtree(stage, ignore_errors=True)
    # The job's name goes with the run's summary (and so to MLflow's stage run), for `omni lineage`.
    summary = {**result.summary, "trainjob": name}
    (out_dir / TRAIN_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult.of_run(out_dir, start, summary)
