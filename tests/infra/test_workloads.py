"""Our workloads are hardened (Pod Security "restricted" and more), sized, probed, and run pinned images that
agree with the rest of the project (pyproject.toml, pipelines/steps.py)."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from tests.infra.manifests import (
    BOOTSTRAP,
    LONG_RUNNING,
    PROJECT_ROOT,
    RUN_TO_COMPLETION,
    containers,
    local_objects,
    workloads,
)

WORKLOADS = workloads()
_IDS = [label for label, *_ in WORKLOADS]

# Volume types Pod Security "restricted" allows.
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_pinned(image: str) -> bool:
    """A digest, or a tag that is not `latest` (the tag is what follows the last ':' after the last '/')."""
    if _DIGEST.search(image):
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and name.rsplit(":", 1)[1] not in {"", "latest"}


def test_every_kind_of_workload_is_covered():
    kinds = {obj["kind"] for *_, obj in WORKLOADS}
    assert kinds == {"Deployment", "StatefulSet", "Job", "ClusterTrainingRuntime"}
    assert kinds <= LONG_RUNNING | RUN_TO_COMPLETION


@pytest.mark.parametrize("label, pod, namespace, obj", WORKLOADS, ids=_IDS)
def test_pod_security_restricted(label, pod, namespace, obj):
    pod_context = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), f"{label}: {flag}"
    for volume in pod.get("volumes", []):
        types = set(volume) - {"name"}
        assert types <= _RESTRICTED_VOLUMES, f"{label}: volume {volume['name']} is {types}"
    assert pod_context.get("runAsUser", 1) != 0 and pod_context.get("runAsGroup", 1) != 0, f"{label}: runs as root"
    assert pod.get("automountServiceAccountToken") is False, f"{label}: mounts an API token it does not need"
    for container in containers(pod):
        where = f"{label}/{container['name']}"
        context = container.get("securityContext", {})
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot"
        assert context.get("runAsUser", pod_context.get("runAsUser")) not in (None, 0), (
            f"{where}: needs an explicit non-root runAsUser (images default to root)"
        )
        assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert not context.get("privileged"), f"{where}: privileged"
        assert "ALL" in context.get("capabilities", {}).get("drop", []), f"{where}: capabilities not dropped"
        assert not context.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        assert context.get("readOnlyRootFilesystem") is True, f"{where}: writable root filesystem"
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccompProfile"


@pytest.mark.parametrize("label, pod, namespace, obj", WORKLOADS, ids=_IDS)
def test_resources_requested_and_limited(label, pod, namespace, obj):
    for container in containers(pod):
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(section, {}))
            assert not missing, f"{label}/{container['name']}: {section} lack {missing}"


@pytest.mark.parametrize("label, pod, namespace, obj", WORKLOADS, ids=_IDS)
def test_probes(label, pod, namespace, obj):
    """Long-running containers are probed; run-to-completion pods (Jobs, training ranks) are not: a readiness
    probe means nothing to a Job, and a liveness probe would kill a rank in a long, silent step."""
    for container in pod["containers"]:
        probes = {p for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in container}
        if obj["kind"] in LONG_RUNNING:
            assert {"livenessProbe", "readinessProbe"} <= probes, f"{label}/{container['name']}: probes {probes}"
        else:
            assert obj["kind"] in RUN_TO_COMPLETION
            assert not probes, f"{label}/{container['name']}: a run-to-completion pod with {probes}"


@pytest.mark.parametrize("label, pod, namespace, obj", WORKLOADS, ids=_IDS)
def test_images_pinned(label, pod, namespace, obj):
    for container in containers(pod):
        assert image_pinned(container["image"]), f"{label}: image {container['image']} is not pinned"
        assert container.get("imagePullPolicy") != "Always", f"{label}: pinned images need no Always pull"


@pytest.mark.parametrize(
    "image, pinned",
    [
        ("postgres:17.6-bookworm", True),
        ("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", True),
        ("kindest/node:v1.34.0@sha256:" + "a" * 64, True),
        ("postgres", False),
        ("postgres:latest", False),
        ("ghcr.io/empathy-omni/omni-components:latest", False),
        ("registry.local:5000/omni", False),
    ],
)
def test_image_pin_check(image, pinned):
    assert image_pinned(image) is pinned


@pytest.mark.parametrize("label, pod, namespace, obj", WORKLOADS, ids=_IDS)
def test_volume_mounts_resolve(label, pod, namespace, obj):
    claims = {c["metadata"]["name"] for c in obj.get("spec", {}).get("volumeClaimTemplates", [])}
    volumes = {v["name"] for v in pod.get("volumes", [])} | claims
    for container in containers(pod):
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{label}/{container['name']}: mounts unknown volume {mount['name']}"


def _objects(kind):
    return [obj for _, _, obj in local_objects() if obj["kind"] == kind]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for group in project["optional-dependencies"].values() for r in group]
    return dict(re.match(r"^([\w.\-]+)(?:\[[\w,]+\])?==([\w.]+)", r).groups() for r in requirements)


def test_training_runtime_runs_the_pipeline_image():
    from pipelines.steps import COMPONENT_IMAGE

    (runtime,) = _objects("ClusterTrainingRuntime")
    assert runtime["metadata"]["name"] == "torch-distributed-deepspeed"
    policy = runtime["spec"]["mlPolicy"]
    assert set(policy) == {"numNodes", "torch"}, "torch-distributed: no MPI policy, so no SSH launcher"
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    (node,) = job["template"]["spec"]["template"]["spec"]["containers"]
    assert node["name"] == "node"  # the container the Trainer injects PET_* into
    assert node["image"] == COMPONENT_IMAGE
    assert node["command"][0] == "torchrun" and node["command"][-1] == "components.training.worker"


def test_mlflow_server_image_matches_pyproject():
    pins = _pyproject_pins()
    dockerfile = (BOOTSTRAP / "05-mlflow" / "Dockerfile").read_text()
    installed = dict(re.findall(r"([\w.\-]+)==([\w.]+)", dockerfile))
    for package in ("mlflow", "boto3", "psycopg2-binary"):
        assert installed.get(package) == pins[package], (
            f"Dockerfile {package}=={installed.get(package)}, pyproject {pins[package]}"
        )
    (deployment,) = _objects("Deployment")
    for container in containers(deployment["spec"]["template"]["spec"]):
        assert container["image"] == f"ghcr.io/empathy-omni/mlflow-server:{pins['mlflow']}"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == pins["mlflow"]


def _mlflow_container():
    (deployment,) = _objects("Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_mlflow_server_stores():
    container = _mlflow_container()
    assert "--artifacts-destination=s3://mlflow" in container["args"]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-server"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.minio.svc.cluster.local:9000"
    assert "postgresql+psycopg2://" in (BOOTSTRAP / "bootstrap.sh").read_text()


def test_mlflow_accepts_in_cluster_hosts_only():
    """MLflow matches Host headers with fnmatch against MLFLOW_SERVER_ALLOWED_HOSTS (split on commas, stripped)."""
    env = {e["name"]: e.get("value") for e in _mlflow_container()["env"]}
    allowed = [host.strip() for host in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")]
    assert "" not in allowed and "*" not in allowed

    def accepts(host):
        return any(fnmatch.fnmatch(host, pattern) if "*" in pattern else host == pattern for pattern in allowed)

    for host in ("mlflow.mlflow.svc.cluster.local:5000", "mlflow:5000", "localhost:5000", "10.244.1.7:5000"):
        assert accepts(host), host
    for host in ("mlflow.attacker.example", "evil.com:5000"):
        assert not accepts(host), host
