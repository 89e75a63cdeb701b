"""Our workloads are hardened (Pod Security "restricted" and more), sized, probed, and run pinned images that
agree with the rest of the project (pyproject.toml, pipelines/steps.py)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

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
    # test_secrets.py checks the URI bootstrap.sh puts in the Secret reaches the PostgreSQL of this step.


@pytest.fixture(scope="module")
def mlflow_as_deployed(tmp_path_factory):
    """The pinned `mlflow server` started with the Deployment's args and literal env (MLFLOW_SERVER_ALLOWED_HOSTS
    among them) as the kubelet would start it, except: bound to loopback on a free port, one worker (two cores),
    and a SQLite store for the Secret's PostgreSQL URI. About 13 s on two busy cores. Yields its base URL."""
    container = _mlflow_container()
    work = tmp_path_factory.mktemp("mlflow-as-deployed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env |= {  # what the Deployment takes from Secret mlflow-server, and what this machine needs
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{work / 'mlflow.db'}",
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "HOME": str(work),
        "PATH": os.environ["PATH"],
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # seven more MLflow imports at start; not what is tested
    }
    overrides = {"--host": "127.0.0.1", "--port": str(port), "--workers": "1"}
    args = []
    for arg in container["args"]:
        name = arg.split("=", 1)[0]
        # $(VAR) is the kubelet's expansion of the container's env in args.
        args.append(
            f"{name}={overrides[name]}" if name in overrides else re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], arg)
        )
    log = work / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [Path(sys.executable).parent / "mlflow", *args],
            env=env,
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while _status(url, "/health", f"127.0.0.1:{port}") != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mlflow server with the Deployment's args did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield url
    os.killpg(process.pid, signal.SIGKILL)  # its state is a throwaway SQLite file
    process.wait()


def _status(url: str, path: str, host: str) -> int | None:
    """The HTTP status of GET url+path sent with Host: host, or None while nothing answers."""
    parsed = urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_mlflow_accepts_in_cluster_hosts_only(mlflow_as_deployed, bootstrapped):
    """DNS-rebinding protection as deployed: the names of the Service (and the tracking URI the pipeline's Secret
    holds), port-forwards and pod IPs are served; any other Host header is refused, except on /health (probes)."""
    api = "/api/2.0/mlflow/experiments/search?max_results=1"
    tracking = urlsplit(bootstrapped.cluster.secrets[("kubeflow", "mlflow-credentials")]["MLFLOW_TRACKING_URI"])
    for host in (tracking.netloc, "mlflow:5000", "mlflow.mlflow.svc:5000", "localhost:5000", "10.244.1.7:5000"):
        assert _status(mlflow_as_deployed, api, host) == 200, host
    for host in ("mlflow.attacker.example", "evil.com:5000", "mlflow.mlflow.svc.cluster.local.evil.com:5000"):
        assert _status(mlflow_as_deployed, api, host) == 403, host
    assert _status(mlflow_as_deployed, "/health", "evil.com:5000") == 200
