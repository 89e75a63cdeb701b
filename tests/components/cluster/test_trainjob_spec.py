"""The TrainJob manifest: valid against the Kubeflow Trainer CRD, and the fields our workers depend on."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from components.cluster.settings import ClusterSettings
from components.cluster.trainjob_config import RESERVED_ENV, TrainJobConfig
from components.cluster.trainjob_spec import TRAIN_METRICS_LABEL, build_trainjob, job_name
from components.contracts import LINEAGE_LABEL
from components.errors import ConfigError

# The vendored CRDs live beside the project (../shared), never inside it.
CRD = Path(__file__).resolve().parents[3].parent / "shared" / "schemas" / "crds" / "trainer.kubeflow.org_trainjobs.yaml"
IMAGE = "ghcr.io/empathy-omni/omni-components:0.1.0"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Validator:
    if not CRD.is_file():
        pytest.skip(f"TrainJob CRD not found at {CRD} (the shared schemas sit beside the project)")
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["served"] and v["name"] == "v1alpha1")
    schema = version["schema"]["openAPIV3Schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


GPU_CLUSTER = ClusterSettings(
    shared_pvc="omni-shared",
    trainjob_cpu="16",
    trainjob_memory="64Gi",
    gpu_node_selector={"pool": "a100"},
    gpu_tolerations=(GPU_TOLERATION,),
)


def gpu_config(**overrides) -> TrainJobConfig:
    return TrainJobConfig(
        **{
            "cluster": GPU_CLUSTER,
            "num_nodes": 2,
            "gpus_per_node": 4,
            "image": IMAGE,
            "service_account": "omni-trainer",
            "active_deadline_s": 7200,
            **overrides,
        }
    )


def node_pod_spec(job: dict) -> dict:
    (patch,) = job["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"  # the torch runtimes' trainer job
    return replicated["template"]["spec"]["template"]["spec"]


def test_multi_node_gpu_job_matches_the_crd(validator):
    job = build_trainjob(
        gpu_config(),
        "/mnt/omni-shared/runs/r1/run",
        "/mnt/omni-shared/runs/r1/dataset",
        name="emotion-omni-train-abc123",
        namespace="team-a",
    )
    validator.validate(job)
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["namespace"] == "team-a"
    spec, trainer = job["spec"], job["spec"]["trainer"]
    assert spec["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed-deepspeed",
    }
    assert spec["activeDeadlineSeconds"] == 7200
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 4  # one rank per GPU
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "16", "memory": "64Gi"},
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "4"},
    }
    assert trainer["image"] == IMAGE
    # torchrun takes nodes, ranks and the rank-0 address from the runtime's PET_* env: no flags, no SSH.
    assert trainer["command"] == ["torchrun"]
    assert trainer["args"] == [
        "-m",
        "components.training.worker",
        "--run-dir",
        "/mnt/omni-shared/runs/r1/run",
        "--dataset",
        "/mnt/omni-shared/runs/r1/dataset",
    ]
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONUNBUFFERED"] == "1" and env["DS_ACCELERATOR"] == "cuda"
    assert env["OMP_NUM_THREADS"] == "4"  # 16 cores / 4 ranks
    assert not set(env) & set(RESERVED_ENV)

    pod = node_pod_spec(job)
    assert pod["volumes"] == [{"name": "omni-shared", "persistentVolumeClaim": {"claimName": "omni-shared"}}]
    assert pod["containers"] == [
        {"name": "node", "volumeMounts": [{"name": "omni-shared", "mountPath": "/mnt/omni-shared"}]}
    ]
    assert pod["nodeSelector"] == {"pool": "a100"} and pod["tolerations"] == [GPU_TOLERATION]
    assert pod["serviceAccountName"] == "omni-trainer"


def test_cpu_only_job_matches_the_crd(validator):
    cluster = ClusterSettings(
        shared_pvc="shared",
        shared_mount_path="/data",
        trainjob_cpu="4",
        trainjob_memory="8Gi",
        trainjob_runtime="torch-distributed",
        gpu_tolerations=(),
    )
    config = TrainJobConfig(cluster=cluster, gpus_per_node=0, procs_per_node=2, env={"NCCL_DEBUG": "INFO"})
    job = build_trainjob(config, "/data/run", "/data/ds", name="cpu-run")
    validator.validate(job)
    trainer = job["spec"]["trainer"]
    assert trainer["numProcPerNode"] == 2
    assert trainer["resourcesPerNode"]["limits"] == {"memory": "8Gi"}  # no GPU asked for
    assert "image" not in trainer  # the runtime's image
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["DS_ACCELERATOR"] == "cpu" and env["OMP_NUM_THREADS"] == "2" and env["NCCL_DEBUG"] == "INFO"
    assert "namespace" not in job["metadata"]
    assert job["spec"]["activeDeadlineSeconds"] == 24 * 3600  # the launcher's timeout_s: orphans end too
    assert set(node_pod_spec(job)) == {"volumes", "containers"}


def test_resumed_job_and_its_metrics_label(validator):
    """A retry's job resumes from the run dir's checkpoints; every trainer pod carries the label the bootstrap's
    metrics Service selects (rank 0 serves /metrics on TRAIN_METRICS_PORT)."""
    job = build_trainjob(gpu_config(), "/mnt/omni-shared/r", "/mnt/omni-shared/d", name="x1", resume=True)
    validator.validate(job)
    assert job["spec"]["trainer"]["args"][-1] == "--resume"
    (patch,) = job["spec"]["runtimePatches"]
    pod_template = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    assert pod_template["metadata"]["labels"] == {TRAIN_METRICS_LABEL[0]: TRAIN_METRICS_LABEL[1]}


def test_the_pipeline_runs_lineage_id_labels_the_job(validator):
    """`kubectl get trainjobs -l empathy-omni.io/lineage-id=<run id>` finds a pipeline run's jobs."""
    run_id = "0b6c3a4e-8f0e-4f5e-9a51-2d1c0f9e7a10"  # a KFP run id
    job = build_trainjob(gpu_config(lineage_id=run_id), "/mnt/omni-shared/r", "/mnt/omni-shared/d", name="x1")
    validator.validate(job)
    assert job["metadata"]["labels"][LINEAGE_LABEL] == run_id
    unlabelled = build_trainjob(gpu_config(), "/mnt/omni-shared/r", "/mnt/omni-shared/d", name="x1")
    assert LINEAGE_LABEL not in unlabelled["metadata"]["labels"]


def test_the_schema_check_bites(validator):
    """The validator is not a no-op: a manifest the API server would refuse fails here too."""
    job = build_trainjob(gpu_config(), "/mnt/omni-shared/r", "/mnt/omni-shared/d", name="x1")
    del job["spec"]["runtimeRef"]
    with pytest.raises(jsonschema.ValidationError, match="runtimeRef"):
        validator.validate(job)
    job = build_trainjob(gpu_config(), "/mnt/omni-shared/r", "/mnt/omni-shared/d", name="x1")
    job["spec"]["runtimePatches"][0].pop("manager")
    with pytest.raises(jsonschema.ValidationError, match="manager"):
        validator.validate(job)


def test_job_names_are_fresh_dns_labels():
    names = {job_name("emotion-omni-train") for _ in range(20)}
    assert len(names) == 20
    assert all(len(n) <= 63 and n.startswith("emotion-omni-train-") for n in names)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"cluster": ClusterSettings()}, "ClusterSettings.shared_pvc is empty"),
        ({"cluster": ClusterSettings(shared_pvc="p", shared_mount_path="relative/dir")}, "must be an absolute path"),
        ({"num_nodes": 0}, "num_nodes=0"),
        ({"gpus_per_node": -1}, "gpus_per_node=-1"),
        ({"cleanup": "sometimes"}, "cleanup='sometimes'"),
        ({"name_prefix": "Emotion_Omni"}, "name_prefix='Emotion_Omni'"),
        ({"env": {"PET_NNODES": "4"}}, r"\['PET_NNODES'\]"),
        ({"lineage_id": "run/7"}, "lineage_id='run/7' is not a valid Kubernetes label value"),
    ],
)
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_trainjob(gpu_config(**overrides), "/mnt/omni-shared/r", "/mnt/omni-shared/d")


def test_paths_must_be_on_the_shared_volume():
    with pytest.raises(ConfigError, match="the dataset /tmp/ds is not under /mnt/omni-shared"):
        build_trainjob(gpu_config(), "/mnt/omni-shared/run", "/tmp/ds")
