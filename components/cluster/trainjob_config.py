"""`TrainJobConfig`: one TrainJob's shape (nodes x ranks), its name and labels, and how the launcher waits for it.

    config = TrainJobConfig(cluster=ClusterSettings(shared_pvc="omni-shared"), num_nodes=2, gpus_per_node=8)

Where the job runs (the runtime, the resources of each node, GPU placement, the shared PVC) is the cluster's: the
`cluster` field, a `ClusterSettings`, is its only definition. In a pipeline, the train step builds this config from
`compile_time_json` (the cluster's part, fixed when the pipeline compiles) plus its run-time parameters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from components.cluster.settings import ClusterSettings
from components.errors import ConfigError, check_keys

# torchrun's distributed settings: the runtime's torch plugin owns them and refuses a TrainJob that sets them.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
CLEANUP_POLICIES = ("always", "on_success", "never")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # the CRD's rule for metadata.name (<= 63 characters)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")  # Kubernetes' rule for label values
NAME_SUFFIX_LEN = 7  # "-" + 6 hex characters (trainjob_spec.job_name)


@dataclass
class TrainJobConfig:
    """One TrainJob on the cluster `cluster`, and how the launcher waits for it."""

    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # runtime, resources, placement, PVC
    namespace: str = ""  # "" = the namespace of the pod we run in (a KFP step) or the kubeconfig's
    name_prefix: str = "emotion-omni-train"  # a random suffix makes each job name unique
    runtime_kind: str = "ClusterTrainingRuntime"  # or "TrainingRuntime" (namespaced, same namespace as the job)
    image: str = ""  # "" = the runtime's image; the pipeline pins its own component image
    num_nodes: int = 1
    gpus_per_node: int = 1  # one DeepSpeed rank per GPU (NCCL); 0 = CPU-only nodes (gloo)
    procs_per_node: int = 0  # ranks per node; 0 = gpus_per_node, or 1 on CPU-only nodes
    service_account: str = ""  # of the trainer pods; "" = the runtime's (or the namespace default)
    env: dict[str, str] = field(default_factory=dict)  # extra env for the ranks, e.g. {"NCCL_DEBUG": "INFO"}
    # Server-side limit (spec.activeDeadlineSeconds); 0 = timeout_s, so a job orphaned by a launcher that died
    # without cleaning up (pod evicted, node lost) still ends by itself.
    active_deadline_s: int = 0
    timeout_s: float = 24 * 3600.0  # how long the launcher waits before it deletes the job and fails
    poll_interval_s: float = 10.0
    cleanup: str = "on_success"  # delete the finished job: always | on_success | never (see components.cluster.run)
    log_tail_lines: int = 40  # per pod, quoted in the error when the job fails
    # The pipeline run's lineage ID (its KFP run id), a label on the TrainJob: `kubectl get trainjobs -l
    # empathy-omni.io/lineage-id=<id>` finds the jobs of one run, and `omni lineage` names them. "" = no label.
    lineage_id: str = ""

    def validate(self) -> None:
        """Raise ConfigError naming the setting and the fix when the job could not run as configured."""
        if not self.cluster.shared_pvc:
            raise ConfigError(
                "ClusterSettings.shared_pvc is empty: the TrainJob pods need a ReadWriteMany PVC shared with the "
                "launcher for the run dir and the dataset; name it (`omni pipeline compile --shared-pvc NAME`)"
            )
        if not PurePosixPath(self.cluster.shared_mount_path).is_absolute():
            raise ConfigError(
                f"ClusterSettings.shared_mount_path={self.cluster.shared_mount_path!r} must be an absolute path"
            )
        if self.num_nodes < 1:
            raise ConfigError(f"TrainJobConfig.num_nodes={self.num_nodes} must be >= 1")
        for name in ("gpus_per_node", "procs_per_node", "active_deadline_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainJobConfig.{name}={getattr(self, name)} must be >= 0")
        if not (self.timeout_s > 0 and self.poll_interval_s > 0):
            raise ConfigError("TrainJobConfig.timeout_s and poll_interval_s must be > 0")
        if self.cleanup not in CLEANUP_POLICIES:
            raise ConfigError(f"TrainJobConfig.cleanup={self.cleanup!r}: use one of {list(CLEANUP_POLICIES)}")
        if not DNS_LABEL.match(self.name_prefix) or len(self.name_prefix) > 63 - NAME_SUFFIX_LEN:
            raise ConfigError(
                f"TrainJobConfig.name_prefix={self.name_prefix!r} must be a lowercase DNS label "
                f"(a-z, 0-9, '-', starting with a letter) of at most {63 - NAME_SUFFIX_LEN} characters"
            )
        if not _LABEL_VALUE.match(self.lineage_id):
            raise ConfigError(
                f"TrainJobConfig.lineage_id={self.lineage_id!r} is not a valid Kubernetes label value "
                "(at most 63 of A-Z, a-z, 0-9, '-', '_', '.', starting and ending alphanumeric)"
            )
        reserved = sorted(set(self.env) & set(RESERVED_ENV))
        if reserved:
            raise ConfigError(
                f"TrainJobConfig.env sets {reserved}: the runtime's torch plugin owns those "
                "(torchrun's distributed settings); remove them"
            )

    @property
    def ranks_per_node(self) -> int:
        return self.procs_per_node or self.gpus_per_node or 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainJobConfig:
        """A config from JSON-decoded values; `cluster` is a dict of ClusterSettings fields."""
        check_keys(cls, data)
        data = dict(data)
        if isinstance(data.get("cluster"), dict):
            data["cluster"] = ClusterSettings.from_dict(data["cluster"])
        return cls(**data)


def compile_time_json(settings: ClusterSettings, image: str) -> str:
    """The part of a train step's TrainJobConfig fixed when the pipeline compiles: the cluster's TrainJob settings
    and the component image (num_nodes, gpus_per_node and lineage_id come at run time)."""
    return json.dumps({"cluster": settings.trainjob_settings(), "image": image}, sort_keys=True)
