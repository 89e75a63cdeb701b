"""`ClusterSettings`: what a cluster run needs beyond the graph, defined once.

The pipeline applies them when it compiles (`pipelines/emotion_omni.py`: resources, secrets, GPU placement, the
shared PVC); the part a TrainJob needs (`TRAINJOB_FIELDS`) also travels to the train step as JSON and places the
job (`components.cluster.trainjob_config.TrainJobConfig.cluster`), so no second copy of runtime, resources,
tolerations or PVC exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components import pipeline_metrics
from components.errors import check_keys

# The settings a TrainJob reads: the train step gets exactly these (as JSON, at compile time).
TRAINJOB_FIELDS = (
    "accelerator_type",
    "gpu_node_selector",
    "gpu_tolerations",
    "shared_pvc",
    "shared_mount_path",
    "trainjob_runtime",
    "trainjob_cpu",
    "trainjob_memory",
)


@dataclass(frozen=True)
class ClusterSettings:
    """What a cluster run needs beyond the graph. Defaults suit a small GPU node pool."""

    train_gpus: int = 1  # per training pod; DeepSpeed runs one rank per GPU
    accelerator_type: str = "nvidia.com/gpu"  # also the GPU resource each TrainJob node asks for
    # Secret holding MLFLOW_TRACKING_URI (+ S3 keys for the artifact store); mounted as env, never in YAML.
    mlflow_secret: str = "mlflow-credentials"
    mlflow_secret_keys: dict[str, str] = field(
        default_factory=lambda: {
            "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
            "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
            "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL",
        }
    )
    # Secret holding the LLM dialogue writer's OMNI_LLM_BASE_URL, OMNI_LLM_MODEL and OMNI_LLM_API_KEY, mounted on the
    # synthesis steps as env; "" mounts none (text_backend="llm" then fails at once, naming the variables).
    llm_secret: str = ""
    # Secret holding the empathy judge's OMNI_JUDGE_BASE_URL, OMNI_JUDGE_MODEL and OMNI_JUDGE_API_KEY, mounted on the
    # evaluate and register steps (register may evaluate the champion again); "" leaves empathy_score not computed.
    judge_secret: str = ""
    retries: int = 2  # for steps that talk to services (MLflow, Triton start)
    # Synthesis parts (the `synthesis_parts` parameter): at most this many pods at once, each with this CPU request;
    # a part runs one synthesizer process per CPU it gets.
    synthesis_parallelism: int = 16
    synthesis_cpu: str = "4"
    # Train steps: a retry (preempted node, OOM kill) resumes from the newest complete checkpoint, mirrored under
    # the run's checkpoint_root, so it repeats at most one checkpoint interval of work.
    train_retries: int = 2
    # Where GPU pods may run: the train step (when it asks for GPUs) and the TrainJob nodes. Many GPU pools are
    # tainted nvidia.com/gpu:NoSchedule; the toleration is harmless where they are not.
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: tuple[dict, ...] = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    # train_backend="trainjob": a ReadWriteMany PVC shared by the train step and the TrainJob pods. "" mounts
    # nothing, and a trainjob run then fails at once, naming this setting (`omni pipeline compile --shared-pvc`).
    shared_pvc: str = ""
    shared_mount_path: str = "/mnt/omni-shared"  # where the PVC is mounted, in the train step and the TrainJob pods
    trainjob_runtime: str = "torch-distributed-deepspeed"  # a ClusterTrainingRuntime (torch ML policy)
    trainjob_cpu: str = "8"  # per TrainJob node
    trainjob_memory: str = "32Gi"  # per TrainJob node
    # Every step pushes its duration and outcome (evaluate its metrics, register the gate) here; the bootstrap
    # installs this Pushgateway. "" pushes nothing.
    pushgateway_url: str = pipeline_metrics.CLUSTER_URL

    def trainjob_settings(self) -> dict[str, Any]:
        """The settings a TrainJob reads (`TRAINJOB_FIELDS`), as JSON-ready values."""
        settings = {name: getattr(self, name) for name in TRAINJOB_FIELDS}
        settings["gpu_node_selector"] = dict(self.gpu_node_selector)
        settings["gpu_tolerations"] = [dict(t) for t in self.gpu_tolerations]  # a tuple here, a list in JSON
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterSettings:
        """Settings from JSON-decoded values (e.g. `trainjob_settings()`); absent keys keep their defaults."""
        check_keys(cls, data)
        data = dict(data)
        if "gpu_tolerations" in data:  # a JSON list; the frozen settings hold a tuple
            data["gpu_tolerations"] = tuple(dict(t) for t in data["gpu_tolerations"])
        return cls(**data)
