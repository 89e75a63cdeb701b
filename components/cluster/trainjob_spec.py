"""The Kubeflow Trainer v2 TrainJob that runs our DeepSpeed workers on N nodes x M GPUs, and the API names it uses.

`build_trainjob` is pure (no API calls); `components.cluster.run` creates the job and watches it.
The contract with the cluster, read from the TrainJob CRD (trainer.kubeflow.org/v1alpha1):

- `spec.runtimeRef` names a ClusterTrainingRuntime with the torch ML policy (default `torch-distributed-deepspeed`,
  the torch-distributed runtime on our component image). Its torch plugin does not wrap the command in torchrun:
  it injects `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR` and `PET_MASTER_PORT` into the
  trainer container, which `torchrun` reads as its defaults. So the trainer's command is `torchrun -m
  components.training.worker ...` with no rendezvous flags: DeepSpeed in the script, no SSH, no MPI.
- `spec.trainer.numNodes` / `numProcPerNode` / `resourcesPerNode` / `env` / `image` / `command` / `args`.
- `spec.runtimePatches` (which replaced `podTemplateOverrides` in Trainer v2.2) mounts the shared PVC into the
  trainer container (`node` in replicated job `node`) and sets nodeSelector, tolerations and serviceAccountName.

The run dir and the dataset must live on that PVC (ReadWriteMany): every node reads the dataset and
train_config.json, rank 0 writes the log and the exported model, all ranks write ZeRO checkpoint shards.
"""

from __future__ import annotations

import math
import secrets
from pathlib import PurePosixPath
from typing import Any

from components.cluster.trainjob_config import DNS_LABEL, TrainJobConfig
from components.contracts import LINEAGE_LABEL
from components.errors import ConfigError

# The TrainJob API (the CRD's served version) and the names the torch runtimes use.
GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
TRAINER_JOB = "node"  # replicated job and container name of the trainer in torch runtimes
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"  # on every pod of the TrainJob's JobSet (named like the job)
NODE_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"  # the node rank of a trainer pod
PATCH_MANAGER = "empathy-omni.io/omni"  # our entry in spec.runtimePatches (one entry per manager)
SHARED_VOLUME = "omni-shared"
RUN_DIR_ANNOTATION = "empathy-omni.io/run-dir"  # where the job's run dir is, as its pods see it
DATASET_ANNOTATION = "empathy-omni.io/dataset"
# Rank 0 serves live metrics on this port; the pods carry this label so the bootstrap's headless Service and
# ServiceMonitor (infra/bootstrap/06-monitoring/training/trainjob-metrics.yaml) find them.
TRAIN_METRICS_PORT = 9400
TRAIN_METRICS_LABEL = ("empathy-omni.io/train-metrics", "true")
WORKER_MODULE = "components.training.worker"


def job_name(prefix: str) -> str:
    """A fresh TrainJob name: the prefix and 6 random hex characters (a valid DNS label)."""
    return f"{prefix}-{secrets.token_hex(3)}"


def _under(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or root in path.parents


def _env(config: TrainJobConfig) -> list[dict[str, str]]:
    env = {
        "HF_HUB_OFFLINE": "1",  # nothing may reach the hub from a training pod
        "PYTHONUNBUFFERED": "1",  # logs reach `kubectl logs` (and our stream) as they are written
        "DS_ACCELERATOR": "cuda" if config.gpus_per_node else "cpu",
    }
    cpu = config.cluster.trainjob_cpu
    if cpu.isdigit():  # split the node's cores between its ranks, as the local launcher does
        env["OMP_NUM_THREADS"] = str(max(1, int(cpu) // config.ranks_per_node))
    env.update(config.env)
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _pod_spec(config: TrainJobConfig) -> dict[str, Any]:
    """The trainer pods' patch: the shared PVC, node placement and ServiceAccount."""
    cluster = config.cluster
    mount = PurePosixPath(cluster.shared_mount_path)  # normalised: no trailing "/"
    pod_spec: dict[str, Any] = {
        "volumes": [{"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": cluster.shared_pvc}}],
        "containers": [{"name": TRAINER_JOB, "volumeMounts": [{"name": SHARED_VOLUME, "mountPath": str(mount)}]}],
    }
    if cluster.gpu_node_selector:
        pod_spec["nodeSelector"] = dict(cluster.gpu_node_selector)
    if cluster.gpu_tolerations:
        pod_spec["tolerations"] = [dict(t) for t in cluster.gpu_tolerations]
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account
    return pod_spec


def build_trainjob(
    config: TrainJobConfig,
    run_dir: str | PurePosixPath,
    dataset_dir: str | PurePosixPath,
    name: str | None = None,
    namespace: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """The TrainJob manifest that runs `torchrun -m components.training.worker --run-dir RUN --dataset DATA`
    (`--resume`: from the run dir's newest complete checkpoint).

    `run_dir` and `dataset_dir` are paths as the pods see them: both must be under the cluster's shared mount path.
    `name` defaults to a fresh `job_name(config.name_prefix)`; `namespace` to `config.namespace` (omitted if "").
    """
    config.validate()
    cluster = config.cluster
    mount = PurePosixPath(cluster.shared_mount_path)
    run_dir, dataset_dir = PurePosixPath(run_dir), PurePosixPath(dataset_dir)
    for label, path in (("run dir", run_dir), ("dataset", dataset_dir)):
        if not _under(path, mount):
            raise ConfigError(
                f"the {label} {path} is not under {mount}, where PVC {cluster.shared_pvc!r} is mounted: "
                "the TrainJob pods see nothing else; stage it on the PVC first"
            )
    name = name or job_name(config.name_prefix)
    if not DNS_LABEL.match(name) or len(name) > 63:
        raise ConfigError(f"TrainJob name {name!r} must be a lowercase DNS label of at most 63 characters")

    # resourcesPerNode replaces the runtime container's resources. Memory limit = request: a rank that outgrows
    # it is OOM-killed and named in the failure, instead of the node evicting its neighbours. No CPU limit
    # (throttling slows every rank); GPUs are an extended resource, where the limit is the request.
    resources: dict[str, Any] = {
        "requests": {"cpu": cluster.trainjob_cpu, "memory": cluster.trainjob_memory},
        "limits": {"memory": cluster.trainjob_memory},
    }
    if config.gpus_per_node:
        resources["limits"][cluster.accelerator_type] = str(config.gpus_per_node)
    trainer: dict[str, Any] = {
        "command": ["torchrun"],  # reads PET_* from the runtime's torch plugin: nodes, ranks, rank-0 address
        "args": ["-m", WORKER_MODULE, "--run-dir", str(run_dir), "--dataset", str(dataset_dir)]
        + (["--resume"] if resume else []),
        "numNodes": config.num_nodes,
        "numProcPerNode": config.ranks_per_node,
        "resourcesPerNode": resources,
        "env": _env(config),
    }
    if config.image:
        trainer["image"] = config.image

    # One patch, ours, on the trainer pods of the runtime's replicated job `node`.
    pod_template = {"metadata": {"labels": dict([TRAIN_METRICS_LABEL])}, "spec": _pod_spec(config)}
    replicated_job = {"name": TRAINER_JOB, "template": {"spec": {"template": pod_template}}}
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": config.runtime_kind, "name": cluster.trainjob_runtime},
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [replicated_job]}}},
            }
        ],
        "activeDeadlineSeconds": config.active_deadline_s or math.ceil(config.timeout_s),
    }

    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "emotion-omni",
            "app.kubernetes.io/component": "trainer",
            "app.kubernetes.io/managed-by": "omni",
            **({LINEAGE_LABEL: config.lineage_id} if config.lineage_id else {}),
        },
        "annotations": {RUN_DIR_ANNOTATION: str(run_dir), DATASET_ANNOTATION: str(dataset_dir)},
    }
    namespace = namespace if namespace is not None else config.namespace
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
