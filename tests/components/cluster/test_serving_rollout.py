"""The serving release client against a fake Kubernetes API (fake_kube.py) holding the Deployment the Helm chart
renders, through the real kubernetes client: find the release, patch it (tests included), wait for the rollout,
say why one stalled; and the RBAC file grants exactly the calls it makes."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from components.cluster.serving_rollout import (
    LINEAGE_ANNOTATION,
    REPOSITORY_ANNOTATION,
    VERSION_ANNOTATION,
    ServingRelease,
)
from components.deploy.errors import DeployError, VerificationFailed
from tests.charts.rendering import FULLNAME, NAMESPACE, RELEASE, render
from tests.components.cluster.fake_kube import FakeKubeAPI, RolloutController, completes, rbac_verbs, stalls
from tests.infra.manifests import validate_object

RBAC_FILE = Path(__file__).resolve().parents[3] / "pipelines" / "rbac" / "serving-deployer.yaml"
BASE = "s3://http://minio.minio.svc.cluster.local:9000/models/emotion-omni/triton"


def chart_deployment(version: int = 2, **values) -> dict:
    """The Deployment the chart renders for release omni in namespace serving, 2 replicas."""
    values = {"model": {"version": version}, "autoscaling": {"enabled": False}, "replicaCount": 2, **values}
    return render(values).one("Deployment")


@contextmanager
def release(plan=None, deployments=None, name: str = RELEASE, namespace: str = NAMESPACE):
    controller = RolloutController(deployments or [chart_deployment()], plan)
    with FakeKubeAPI(rollout=controller) as fake:
        yield fake, ServingRelease(namespace, name, api_client=fake.api_client())


def stored(fake) -> dict:
    return fake.rollout.tracked[(NAMESPACE, FULLNAME)].obj


class Clock:
    """time.monotonic and time.sleep for wait_rolled_out: sleeping advances the clock, nothing waits."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def wait(client: ServingRelease, timeout_s: float = 60.0, poll_s: float = 5.0) -> Clock:
    clock = Clock()
    client.wait_rolled_out(timeout_s, poll_s, sleep=clock.sleep, clock=clock)
    return clock


# --- finding the release ----------------------------------------------------------------------------------------
def test_state_is_what_the_chart_rendered():
    with release() as (fake, client):
        state = client.state()
    assert (state.deployment, state.namespace, state.version, state.replicas) == (FULLNAME, NAMESPACE, 2, 2)
    assert state.repository_uri == f"{BASE}/2" and state.repository_base == BASE
    assert state.service_url == f"http://{FULLNAME}.{NAMESPACE}.svc.cluster.local:8000"
    assert state.metrics_url == f"http://{FULLNAME}.{NAMESPACE}.svc.cluster.local:8002/metrics"
    assert state.lineage_id == "" and state.in_progress == ""
    # Found by exactly the chart's selector labels.
    (listed,) = fake.calls("GET", "/deployments")
    selector = chart_deployment()["spec"]["selector"]["matchLabels"]
    assert set(listed[2]["labelSelector"][0].split(",")) == {f"{k}={v}" for k, v in selector.items()}


@pytest.mark.parametrize("name, namespace", [("other", NAMESPACE), (RELEASE, "team-a")])
def test_a_release_without_the_charts_deployment_is_named_with_the_fix(name, namespace):
    with release(name=name, namespace=namespace) as (fake, client), pytest.raises(DeployError) as err:
        client.state()
    assert str(err.value) == (
        f"release {name} has no emotion-omni-triton Deployment in namespace {namespace}: install the chart (helm "
        f"install {name} charts/emotion-omni-triton -n {namespace}) or pass the right release/namespace"
    )


def test_forbidden_names_the_rbac_file():
    with release() as (fake, client), pytest.raises(DeployError) as err:
        fake.errors["deployments"].append(403)
        client.state()
    assert "HTTP 403" in str(err.value) and "injected 403" in str(err.value)
    assert "get/list/patch on deployments.apps and list on pods" in str(err.value)
    assert f"kubectl apply -n {NAMESPACE} -f pipelines/rbac/serving-deployer.yaml" in str(err.value)


def test_a_hand_edited_template_is_refused():
    edited = chart_deployment()
    edited["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] = "3"  # the arg still says /2
    with release(deployments=[edited]) as (fake, client), pytest.raises(DeployError) as err:
        client.state()
    assert "disagrees with itself" in str(err.value) and "--set model.version=<N>" in str(err.value)


def test_a_paused_deployment_is_in_progress():
    paused = chart_deployment()
    paused["spec"]["paused"] = True
    with release(deployments=[paused]) as (fake, client):
        assert "paused" in client.state().in_progress


# --- the move -----------------------------------------------------------------------------------------------------
def test_move_patches_only_the_version_and_tests_what_it_read():
    with release() as (fake, client):
        original = copy.deepcopy(stored(fake))
        client.state()
        client.move_to(3, lineage_id="run-7/v3")
        moved = copy.deepcopy(stored(fake))
        client.move_to(2)  # no lineage id: the one of v3 must not stay
        back = stored(fake)
    (first, second) = [call[3] for call in fake.calls("PATCH", "/deployments/")]
    pod = "/spec/template"
    arg = f"{pod}/spec/containers/0/args/0"
    annotations = f"{pod}/metadata/annotations"
    assert first == [
        {"op": "test", "path": arg, "value": f"--model-repository={BASE}/2"},
        {"op": "replace", "path": arg, "value": f"--model-repository={BASE}/3"},
        {"op": "test", "path": f"{annotations}/empathy-omni.github.io~1model-version", "value": "2"},
        {"op": "replace", "path": f"{annotations}/empathy-omni.github.io~1model-version", "value": "3"},
        {"op": "test", "path": f"{annotations}/empathy-omni.github.io~1model-repository", "value": f"{BASE}/2"},
        {"op": "replace", "path": f"{annotations}/empathy-omni.github.io~1model-repository", "value": f"{BASE}/3"},
        {"op": "add", "path": f"{annotations}/empathy-omni.github.io~1lineage-id", "value": "run-7/v3"},
    ]
    assert second[-1] == {"op": "remove", "path": f"{annotations}/empathy-omni.github.io~1lineage-id"}
    template = moved["spec"]["template"]
    assert template["spec"]["containers"][0]["args"][0] == f"--model-repository={BASE}/3"
    assert template["metadata"]["annotations"][VERSION_ANNOTATION] == "3"
    assert template["metadata"]["annotations"][REPOSITORY_ANNOTATION] == f"{BASE}/3"
    assert template["metadata"]["annotations"][LINEAGE_ANNOTATION] == "run-7/v3"
    assert moved["metadata"]["generation"] == original["metadata"]["generation"] + 1
    # Nothing else changed: going back restores the rendered template exactly.
    assert back["spec"] == original["spec"]


def test_a_concurrent_change_is_refused_and_nothing_changes():
    with release() as (fake, client):
        client.state()
        sre = ServingRelease(NAMESPACE, RELEASE, api_client=fake.api_client())
        sre.move_to(5)  # e.g. a helm upgrade between our read and our patch
        with pytest.raises(DeployError) as err:
            client.move_to(3)
        after = stored(fake)
    message = str(err.value)
    assert "changed since it was read (v2 at" in message and "nothing changed" in message
    assert "testing value /spec/template/spec/containers/0/args/0 failed" in message
    assert after["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] == "5"


# --- the wait -----------------------------------------------------------------------------------------------------
def test_wait_returns_once_every_replica_serves_the_new_template():
    with release(plan=lambda version: completes(after=3)) as (fake, client):
        client.move_to(3)
        clock = wait(client)
        state = client.state()
    # One read that has not seen the change yet, three in progress, then done: four sleeps of poll_s.
    assert clock.sleeps == [5.0] * 4
    assert len(fake.calls("GET", f"/deployments/{FULLNAME}")) == 5
    assert state.version == 3 and state.in_progress == ""


def test_a_stalled_rollout_says_why_its_pods_are_not_ready():
    plan = {3: stalls("CrashLoopBackOff", "back-off 5m0s restarting failed container=triton")}
    with release(plan=lambda v: plan.get(v, completes())) as (fake, client):
        client.move_to(3)
        with pytest.raises(VerificationFailed) as err:
            wait(client)
    message = str(err.value)
    assert message.startswith(f"the rollout of {FULLNAME} to v3 stalled: ReplicaSet ")
    assert "has timed out progressing. (ProgressDeadlineExceeded)" in message
    assert "triton waiting: CrashLoopBackOff (back-off 5m0s restarting failed container=triton)" in message
    assert "last exit: Error (exit code 1)" in message
    assert message.count(f"{FULLNAME}-") == 2  # the ReplicaSet, and only the new pod (the old ones are ready)
    (pods,) = fake.calls("GET", "/pods")
    selector = chart_deployment()["spec"]["selector"]["matchLabels"]
    assert set(pods[2]["labelSelector"][0].split(",")) == {f"{k}={v}" for k, v in selector.items()}


def test_moving_back_from_a_stall_waits_for_the_controller_to_see_it():
    """Right after the move back the Deployment still reports the stall of the template before (observedGeneration
    behind); that stale ProgressDeadlineExceeded must not fail the way back."""
    with release(plan=lambda v: stalls() if v == 3 else completes()) as (fake, client):
        client.move_to(3)
        with pytest.raises(VerificationFailed):
            wait(client)
        client.move_to(2)
        clock = wait(client)
        assert client.state().version == 2
    assert clock.sleeps == [5.0]  # the stale read, then done


def test_a_rollout_past_the_timeout_fails_with_what_it_waits_for():
    with release(plan=lambda version: completes(after=100)) as (fake, client):
        client.move_to(3)
        with pytest.raises(VerificationFailed) as err:
            wait(client, timeout_s=30, poll_s=10)
    message = str(err.value)
    assert f"the rollout of {FULLNAME} did not finish within 30 s (1 of 2 replicas updated)" in message
    assert "triton running, not ready (readiness: every model loaded)" in message


def test_api_server_hiccups_during_the_wait_are_retried():
    with release() as (fake, client):
        client.move_to(3)
        fake.errors["deployment"].extend([503, 500])
        clock = wait(client)
        assert client.state().version == 3
    assert len(clock.sleeps) == 4  # two refused reads, the one that has not seen the change, one in progress


# --- RBAC ---------------------------------------------------------------------------------------------------------
def rbac_docs() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(RBAC_FILE.read_text())}


def test_rbac_objects_are_valid_and_bind_the_pipeline_runner():
    docs = rbac_docs()
    assert sorted(docs) == ["Role", "RoleBinding"]
    for doc in docs.values():
        validate_object(doc)  # strict, for every Kubernetes version the bootstrap supports
    role, binding = docs["Role"], docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}]
    assert "namespace" not in role["metadata"]  # applied with -n into the release's namespace


def test_rbac_grants_exactly_what_the_client_calls():
    """Every call of a whole deploy that stalls and moves back (find, patch, wait, list pods, patch back, wait)."""
    with release(plan=lambda v: stalls() if v == 3 else completes()) as (fake, client):
        client.state()
        client.move_to(3)
        with pytest.raises(VerificationFailed):
            wait(client)
        client.move_to(2)
        wait(client)
    granted = {
        (group, resource, verb)
        for rule in rbac_docs()["Role"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert (
        rbac_verbs(fake.requests)
        == granted
        == {
            ("apps", "deployments", "list"),
            ("apps", "deployments", "get"),
            ("apps", "deployments", "patch"),
            ("", "pods", "list"),
        }
    )
