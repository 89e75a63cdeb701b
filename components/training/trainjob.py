"""The Kubeflow Trainer v2 TrainJob that runs our DeepSpeed workers on N nodes x M GPUs: its config and its spec.

`build_trainjob` is pure (no API calls); `components.training.trainjob_run` creates the job and watches it.
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

import dataclasses
import math
import re
import secrets
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from components.contracts import LINEAGE_LABEL

# The TrainJob API (the CRD's served version) and the names the torch runtimes use.
GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
TRAINER_JOB = "node"  # replicated job and container name of the trainer in torch runtimes
PATCH_MANAGER = "empathy-omni.io/omni"  # our entry in spec.runtimePatches (one entry per manager)
SHARED_VOLUME = "omni-shared"
# Rank 0 serves live metrics on this port; the pods carry this label so the bootstrap's headless Service and
# ServiceMonitor (infra/bootstrap/06-monitoring/training/trainjob-metrics.yaml) find them.
TRAIN_METRICS_PORT = 9400
TRAIN_METRICS_LABEL = ("empathy-omni.io/train-metrics", "true")
WORKER_MODULE = "components.training.worker"
# torchrun's distributed settings: the runtime's torch plugin owns them and refuses a TrainJob that sets them.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
CLEANUP_POLICIES = ("always", "on_success", "never")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # the CRD's rule for metadata.name (<= 63 characters)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")  # Kubernetes' rule for label values
_NAME_SUFFIX_LEN = 7  # "-" + 6 hex characters


@dataclass
class TrainJobConfig:
    """Where and how big the TrainJob is, and how the launcher waits for it."""

    namespace: str = ""  # "" = the namespace of the pod we run in (a KFP step) or the kubeconfig's
    name_prefix: str = "emotion-omni-train"  # a random suffix makes each job name unique
    runtime: str = "torch-distributed-deepspeed"  # a ClusterTrainingRuntime with the torch ML policy
    runtime_kind: str = "ClusterTrainingRuntime"  # or "TrainingRuntime" (namespaced, same namespace as the job)
    image: str = ""  # "" = the runtime's image; the pipeline pins its own component image
    num_nodes: int = 1
    gpus_per_node: int = 1  # one DeepSpeed rank per GPU (NCCL); 0 = CPU-only nodes (gloo)
    procs_per_node: int = 0  # ranks per node; 0 = gpus_per_node, or 1 on CPU-only nodes
    cpu: str = "8"  # requested per node
    memory: str = "32Gi"  # requested per node
    gpu_resource: str = "nvidia.com/gpu"
    pvc: str = ""  # ReadWriteMany PVC holding the run dir and the dataset; required
    mount_path: str = "/mnt/omni-shared"  # where the PVC is mounted, in the trainer pods and in the launcher
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    service_account: str = ""  # of the trainer pods; "" = the runtime's (or the namespace default)
    env: dict[str, str] = field(default_factory=dict)  # extra env for the ranks, e.g. {"NCCL_DEBUG": "INFO"}
    # Server-side limit (spec.activeDeadlineSeconds); 0 = timeout_s, so a job orphaned by a launcher that died
    # without cleaning up (pod evicted, node lost) still ends by itself.
    active_deadline_s: int = 0
    timeout_s: float = 24 * 3600.0  # how long the launcher waits before it deletes the job and fails
    poll_interval_s: float = 10.0
    cleanup: str = "on_success"  # delete the finished job: always | on_success | never (see trainjob_run)
    log_tail_lines: int = 40  # per pod, quoted in the error when the job fails
    # The pipeline run's lineage ID (its KFP run id), a label on the TrainJob: `kubectl get trainjobs -l
    # empathy-omni.io/lineage-id=<id>` finds the jobs of one run, and `omni lineage` names them. "" = no label.
    lineage_id: str = ""

    def validate(self) -> None:
        if not self.pvc:
            raise ValueError(
                "TrainJobConfig.pvc is empty: the TrainJob pods need a ReadWriteMany PVC shared with "
                "the launcher for the run dir and the dataset (pipeline: ClusterSettings.shared_pvc, "
                "`omni pipeline compile --shared-pvc NAME`)"
            )
        if not PurePosixPath(self.mount_path).is_absolute():
            raise ValueError(f"TrainJobConfig.mount_path={self.mount_path!r} must be an absolute path")
        if self.num_nodes < 1:
            raise ValueError(f"TrainJobConfig.num_nodes={self.num_nodes} must be >= 1")
        for name in ("gpus_per_node", "procs_per_node", "active_deadline_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainJobConfig.{name}={getattr(self, name)} must be >= 0")
        if not (self.timeout_s > 0 and self.poll_interval_s > 0):
            raise ValueError("TrainJobConfig.timeout_s and poll_interval_s must be > 0")
        if self.cleanup not in CLEANUP_POLICIES:
            raise ValueError(f"TrainJobConfig.cleanup={self.cleanup!r}: use one of {list(CLEANUP_POLICIES)}")
        if not _DNS_LABEL.match(self.name_prefix) or len(self.name_prefix) > 63 - _NAME_SUFFIX_LEN:
            raise ValueError(
                f"TrainJobConfig.name_prefix={self.name_prefix!r} must be a lowercase DNS label "
                f"(a-z, 0-9, '-', starting with a letter) of at most {63 - _NAME_SUFFIX_LEN} characters"
            )
        if not _LABEL_VALUE.match(self.lineage_id):
            raise ValueError(
                f"TrainJobConfig.lineage_id={self.lineage_id!r} is not a valid Kubernetes label value "
                "(at most 63 of A-Z, a-z, 0-9, '-', '_', '.', starting and ending alphanumeric)"
            )
        reserved = sorted(set(self.env) & set(RESERVED_ENV))
        if reserved:
            raise ValueError(
                f"TrainJobConfig.env sets {reserved}: the runtime's torch plugin owns those "
                "(torchrun's distributed settings); remove them"
            )

    @property
    def ranks_per_node(self) -> int:
        return self.procs_per_node or self.gpus_per_node or 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainJobConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainJobConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


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
    if config.cpu.isdigit():  # split the node's cores between its ranks, as the local launcher does
        env["OMP_NUM_THREADS"] = str(max(1, int(config.cpu) // config.ranks_per_node))
    env.update(config.env)
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


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

    `run_dir` and `dataset_dir` are paths as the pods see them: both must be under `config.mount_path`.
    `name` defaults to a fresh `job_name(config.name_prefix)`; `namespace` to `config.namespace` (omitted if "").
    """
    config.validate()
    mount = PurePosixPath(config.mount_path)
    run_dir, dataset_dir = PurePosixPath(run_dir), PurePosixPath(dataset_dir)
    for label, path in (("run dir", run_dir), ("dataset", dataset_dir)):
        if not _under(path, mount):
            raise ValueError(
                f"the {label} {path} is not under {mount}, where PVC {config.pvc!r} is mounted: "
                "the TrainJob pods see nothing else; stage it on the PVC first"
            )
    name = name or job_name(config.name_prefix)
    if not _DNS_LABEL.match(name) or len(name) > 63:
        raise ValueError(f"TrainJob name {name!r} must be a lowercase DNS label of at most 63 characters")

    # resourcesPerNode replaces the runtime container's resources. Memory limit = request: a rank that outgrows
    # it is OOM-killed and named in the failure, instead of the node evicting its neighbours. No CPU limit
    # (throttling slows every rank); GPUs are an extended resource, where the limit is the request.
    resources: dict[str, Any] = {
        "requests": {"cpu": config.cpu, "memory": config.memory},
        "limits": {"memory": config.memory},
    }
    if config.gpus_per_node:
        resources["limits"][config.gpu_resource] = str(config.gpus_per_node)
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

    pod_spec: dict[str, Any] = {
        "volumes": [{"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": config.pvc}}],
        "containers": [{"name": TRAINER_JOB, "volumeMounts": [{"name": SHARED_VOLUME, "mountPath": str(mount)}]}],
    }
    if config.node_selector:
        pod_spec["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in config.tolerations]
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account

    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": config.runtime_kind, "name": config.runtime},
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {
                                    "name": TRAINER_JOB,
                                    "template": {
                                        "spec": {
                                            "template": {
                                                "metadata": {"labels": dict([TRAIN_METRICS_LABEL])},
                                                "spec": pod_spec,
                                            }
                                        }
                                    },
                                }
                            ]
                        }
                    }
                },
            }
        ],
    }
    spec["activeDeadlineSeconds"] = config.active_deadline_s or math.ceil(config.timeout_s)

    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "emotion-omni",
            "app.kubernetes.io/component": "trainer",
            "app.kubernetes.io/managed-by": "omni",
            **({LINEAGE_LABEL: config.lineage_id} if config.lineage_id else {}),
        },
        "annotations": {"empathy-omni.io/run-dir": str(run_dir), "empathy-omni.io/dataset": str(dataset_dir)},
    }
    namespace = namespace if namespace is not None else config.namespace
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
