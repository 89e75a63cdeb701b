"""bootstrap.sh, run for real against a recorded kubectl/helmfile/kind (recorded_cluster.py): it applies every step
directory in order, each into a namespace that exists and after the Secrets its workloads read, creates those
Secrets once and never prints them, stops before touching the cluster when a tool or an earlier step is missing,
and a second run changes nothing. test_shell_scripts.py runs shellcheck over it."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.manifests import (
    BOOTSTRAP,
    KIND_CONFIG,
    PROJECT_ROOT,
    containers,
    kustomizations,
    load_docs,
    pod_specs,
)
from tests.infra.recorded_cluster import FAKE_TOOLS, RecordedCluster

STEP_DIRS = sorted(p.name for p in BOOTSTRAP.iterdir() if p.is_dir() and re.match(r"\d\d-", p.name))
LAUNCHER_ROLE = PROJECT_ROOT / "pipelines" / "rbac" / "trainjob-launcher.yaml"
DEPLOYER_ROLE = PROJECT_ROOT / "pipelines" / "rbac" / "serving-deployer.yaml"
# The images `bootstrap.sh kind` loads into the cluster (those built from this repository).
COMPONENTS_IMAGE = "ghcr.io/empathy-omni/omni-components:0.1.0"


def _secret_refs(pod: dict) -> set[str]:
    """Names of the Secrets a pod spec reads through env or envFrom (in the pod's own namespace)."""
    names = set()
    for container in containers(pod):
        for env in container.get("env", []):
            if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                names.add(ref["name"])
        names |= {source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source}
    return names


def secrets_read_by_step_dir() -> dict[str, set[str]]:
    """kustomization directory (relative to infra/bootstrap) -> "namespace/name" of each Secret its pods read."""
    found = {}
    for kustomization in kustomizations():
        if not kustomization.dir.is_relative_to(BOOTSTRAP):
            continue
        refs = {
            f"{kustomization.namespace}/{name}"
            for resource in kustomization.local_resources
            if resource.is_file()
            for obj in load_docs(resource)
            for _, pod in pod_specs(obj)
            for name in _secret_refs(pod)
        }
        found[kustomization.dir.relative_to(BOOTSTRAP).as_posix()] = refs
    return found


# --- arguments and tools ------------------------------------------------------------------------------------


def test_usage_without_arguments(tmp_path):
    run = RecordedCluster(tmp_path).run()
    assert run.returncode == 2 and "Steps:" in run.stdout
    assert not run.calls


def test_unknown_step_fails_naming_it_before_touching_the_cluster(tmp_path):
    run = RecordedCluster(tmp_path).run("nonsense")
    assert run.returncode != 0 and "unknown step 'nonsense'" in run.stderr
    assert not run.calls


def test_missing_kubectl_fails_naming_it(tmp_path):
    run = RecordedCluster(tmp_path, tools=tuple(t for t in FAKE_TOOLS if t != "kubectl")).run("namespaces")
    assert run.returncode != 0 and "kubectl is not installed" in run.stderr
    assert not run.calls


# --- a fresh cluster ----------------------------------------------------------------------------------------


def test_all_applies_every_step_directory_in_order(bootstrapped):
    applied = [a for a in bootstrapped.run.applied() if re.match(r"\d\d-", a)]
    first_use = list(dict.fromkeys(a.split("/")[0] for a in applied))
    assert first_use == STEP_DIRS, f"steps applied out of order (or one never): {first_use}"
    # Prometheus Operator's CRDs come with the chart: the ServiceMonitors and rules are applied after it.
    calls = bootstrapped.run.calls
    (sync,) = [i for i, c in enumerate(calls) if c.tool == "helmfile"]
    assert calls[sync].args == ["--file", str(BOOTSTRAP / "helmfile.yaml"), "sync"]
    assert sync < min(i for i, c in enumerate(calls) if (c.applied or "").startswith("06-monitoring"))


def test_every_step_is_waited_for(bootstrapped):
    """Each step ends by waiting for what it applied, so the next finds it ready."""
    waits = [" ".join(c.args) for c in bootstrapped.run.of("kubectl") if c.args[0] in ("wait", "rollout")]
    for expected in (
        "crd/applications.app.k8s.io",
        "crd/trainjobs.trainer.kubeflow.org",
        "statefulset/minio",
        "job/minio-buckets",
        "statefulset/mlflow-postgres",
        "deployment/mlflow",
    ):
        assert any(expected in wait for wait in waits), f"nothing waits for {expected}"


def test_workloads_are_applied_after_the_secrets_they_read(bootstrapped):
    needed = secrets_read_by_step_dir()
    assert any(needed.values()), "no workload reads a Secret: the check below would be empty"
    for call in bootstrapped.run.calls:
        if call.applied in needed:
            missing = needed[call.applied] - set(call.secrets)
            assert not missing, f"{call.applied} applied before its Secrets {missing} exist"


def test_secrets_are_created_and_never_printed(bootstrapped):
    secrets = bootstrapped.cluster.secrets
    assert set(secrets) == {
        ("minio", "minio-root"),
        ("minio", "minio-users"),
        ("serving", "omni-triton-secrets"),
        ("mlflow", "mlflow-postgres"),
        ("mlflow", "mlflow-server"),
        ("kubeflow", "mlflow-credentials"),
        ("monitoring", "grafana-admin"),
    }
    for (namespace, name), data in secrets.items():
        assert f"secret {namespace}/{name} created" in bootstrapped.run.stdout
        for key, value in data.items():
            assert len(value) >= 4, f"{namespace}/{name} {key} is (nearly) empty"
            if len(value) >= 16:  # generated credentials and URLs holding them; short identifiers may recur
                assert value not in bootstrapped.run.output, f"{namespace}/{name} {key} was printed"


def test_trainer_step_lets_the_pipeline_launch_trainjobs(bootstrapped):
    """The pipeline's ServiceAccount is bound to the launcher Role, in the namespace the runs use."""
    (role,) = [doc for doc in load_docs(LAUNCHER_ROLE) if doc["kind"] == "Role"]
    (applied,) = [c for c in bootstrapped.run.calls if c.applied == "pipelines/rbac/trainjob-launcher.yaml"]
    assert applied.namespace == "kubeflow"
    (piped,) = [c for c in bootstrapped.run.calls if c.applied == "-"]
    binding = json.loads(piped.stdin)
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "kubeflow"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}]
    assert "ClusterTrainingRuntime/torch-distributed-deepspeed" in bootstrapped.cluster.objects


def test_pipeline_step_lets_the_deploy_step_move_the_serving_release(bootstrapped):
    """The deploy step's Role lands in the namespace the chart serves from, bound to the runs' ServiceAccount."""
    (applied,) = [c for c in bootstrapped.run.calls if c.applied == "pipelines/rbac/serving-deployer.yaml"]
    assert applied.namespace == "serving"
    (binding,) = [doc for doc in load_docs(DEPLOYER_ROLE) if doc["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}]


def test_second_run_changes_nothing(bootstrapped):
    cluster = bootstrapped.cluster
    before = cluster.secrets
    run = cluster.run("all")
    assert run.returncode == 0, run.output[-3000:]
    assert cluster.secrets == before, "a re-run rotated a credential behind a running service"
    assert not [c for c in run.of("kubectl") if c.args[:2] == ["create", "secret"]]
    assert run.stdout.count("exists; kept") == len(before)
    # A Job's pod template is immutable: the finished bucket Job is deleted before step 4 applies it again.
    args = [" ".join(c.args) for c in run.of("kubectl")]
    delete = args.index("delete job minio-buckets --ignore-not-found")
    assert delete < [c.applied for c in run.of("kubectl")].index("04-minio")


# --- prerequisites ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step, namespaces, tools, message",
    [
        ("minio", (), FAKE_TOOLS, "namespace minio does not exist. Fix: run step namespaces (1) first."),
        ("mlflow", ("mlflow",), FAKE_TOOLS, "namespace kubeflow does not exist. Fix: run step pipelines (2) first."),
        ("mlflow", ("mlflow", "kubeflow"), FAKE_TOOLS, "Secret minio/minio-users is missing. Fix: run step minio"),
        ("monitoring", ("monitoring",), tuple(t for t in FAKE_TOOLS if t != "helm"), "helm is not installed"),
        ("monitoring", ("monitoring",), tuple(t for t in FAKE_TOOLS if t != "helmfile"), "helmfile is not installed"),
        ("kind", (), tuple(t for t in FAKE_TOOLS if t != "docker"), "docker is not installed"),
    ],
)
def test_missing_prerequisite_stops_before_anything_is_changed(tmp_path, step, namespaces, tools, message):
    cluster = RecordedCluster(tmp_path, namespaces=namespaces, tools=tools)
    run = cluster.run(step)
    assert run.returncode != 0 and message in run.stderr, run.output
    assert not run.applied() and not cluster.secrets and not run.of("helmfile") and not run.of("kind")


def test_monitoring_without_kubeflow_skips_the_training_scrape(tmp_path):
    """TrainJobs run in kubeflow; without step 2 the step skips their ServiceMonitor rather than fail."""
    run = RecordedCluster(tmp_path, namespaces=("monitoring",)).run("monitoring")
    assert run.returncode == 0, run.output
    assert run.applied() == ["06-monitoring"]
    assert "namespace kubeflow is absent: training runs are not scraped" in run.stdout


def test_custom_metrics_api_is_retried_until_it_serves(tmp_path):
    """prometheus-adapter's APIService answers a little after its Deployment is Available."""
    run = RecordedCluster(tmp_path, namespaces=("monitoring", "kubeflow"), raw_failures=2).run("monitoring")
    assert run.returncode == 0, run.output
    assert [c.args for c in run.of("sleep")] == [["10"], ["10"]]
    assert "attempt 2/18 failed; retrying in 10s" in run.stderr  # shown, though the probe's output is not


def test_custom_metrics_api_that_never_serves_fails_the_step(tmp_path):
    run = RecordedCluster(tmp_path, namespaces=("monitoring",), raw_failures=100).run("monitoring")
    assert run.returncode != 0
    assert len([c for c in run.of("kubectl") if c.args[:2] == ["get", "--raw"]]) == 18


# --- the local kind cluster ---------------------------------------------------------------------------------


def test_kind_creates_the_cluster_once_and_loads_built_images(tmp_path):
    cluster = RecordedCluster(tmp_path, images=(COMPONENTS_IMAGE,))
    run = cluster.run("kind", env={"CLUSTER_NAME": "omni-ci"})
    assert run.returncode == 0, run.output
    kind = [c.args for c in run.of("kind")]
    assert ["create", "cluster", "--name", "omni-ci", "--config", str(KIND_CONFIG), "--wait", "5m"] in kind
    assert ["load", "docker-image", COMPONENTS_IMAGE, "--name", "omni-ci"] in kind
    assert len([a for a in kind if a[:2] == ["load", "docker-image"]]) == 1, "only built images are loaded"
    assert "is not built locally" in run.stdout
    assert ["config", "use-context", "kind-omni-ci"] in [c.args for c in run.of("kubectl")]
    assert run.applied() == ["infra/kind/metrics-server"]

    again = cluster.run("kind", env={"CLUSTER_NAME": "omni-ci"})
    assert again.returncode == 0 and "cluster exists; kept" in again.stdout
    assert not [c for c in again.of("kind") if c.args[:2] == ["create", "cluster"]]
    assert cluster.clusters == ["omni-ci"]


# --- documentation ------------------------------------------------------------------------------------------


def test_readme_documents_every_step():
    readme = (BOOTSTRAP / "README.md").read_text()
    for step in STEP_DIRS:
        assert f"`{step}/`" in readme, f"README.md has no section for {step}"
    for topic in ("Verify", "Remove"):
        assert readme.count(topic) >= len(STEP_DIRS), f"every step says how to {topic.lower()} it"
