"""deploy_cluster() end to end: the Helm chart's Deployment in a fake Kubernetes API (through the real kubernetes
client), the published versions in a real S3 server (SeaweedFS), and the smoke request answered by a real
tritonserver on the tiny model, standing in for the release's Service. Its repository holds version 2 only, so
model_version answers "2": a deploy of 2 passes the smoke request, a deploy of 3 fails it."""

from __future__ import annotations

import pytest

from components.cluster.serving_rollout import LINEAGE_ANNOTATION, VERSION_ANNOTATION
from components.contracts import RESPONSE_EMOTIONS, TRITON_MODEL_NAME
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError
from components.deploy.outcome import DEPLOYED, ROLLBACK_FAILED, ROLLED_BACK
from components.storage import upload_directory
from serving.deploy_cluster import NO_PROMETHEUS, deploy_cluster
from serving.launcher import TritonConfig, TritonServer
from serving.repository import CONFIG_FILE
from serving.smoke import probe_wav
from tests.charts.rendering import FULLNAME, NAMESPACE, RELEASE, render
from tests.components.cluster.fake_kube import FakeKubeAPI, RolloutController, completes, rbac_verbs, stalls
from tests.conftest import one_instance_repository
from tests.fake_prometheus import per_pod_answers, serve_prometheus

PUBLISHED = (1, 2, 3)  # versions whose config.pbtxt is in the object store; 4 never was


@pytest.fixture(scope="module")
def triton(tiny_model_dir, tmp_path_factory):
    repo = one_instance_repository(tiny_model_dir, tmp_path_factory.mktemp("cluster_repo"), version=2)
    config = TritonConfig(
        model_repository=str(repo),
        models=(TRITON_MODEL_NAME,),
        startup_timeout_s=300,
        work_dir=str(tmp_path_factory.mktemp("cluster_triton")),
    )
    with TritonServer(config) as server:
        yield server


@pytest.fixture()
def base(s3_env, tmp_path) -> str:
    """The chart's repository base in the S3 server, with the config.pbtxt of each PUBLISHED version."""
    uri = f"s3://http://{s3_env}/models/cluster-deploy/triton"
    for version in PUBLISHED:
        marker = tmp_path / str(version) / TRITON_MODEL_NAME / CONFIG_FILE
        marker.parent.mkdir(parents=True)
        marker.write_text(f"name: {TRITON_MODEL_NAME!r}\n")
    upload_directory(tmp_path, uri)
    return uri


def cluster(base: str, version: int, plan=None) -> FakeKubeAPI:
    """A fake API holding the chart's Deployment serving `version` from `base`, 2 replicas."""
    values = {
        "model": {"version": version},
        "modelRepository": {"uri": base},
        "autoscaling": {"enabled": False},
        "replicaCount": 2,
    }
    return FakeKubeAPI(rollout=RolloutController([render(values).one("Deployment")], plan))


def config(triton=None, **overrides) -> DeployConfig:
    service_url = triton.http_url if triton else "http://127.0.0.1:9"  # port 9 (discard): never answered
    fields = {"target": "kubernetes", "namespace": NAMESPACE, "release": RELEASE, "service_url": service_url}
    return DeployConfig(**{**fields, "rollout_timeout_s": 30, "poll_s": 0.01, "smoke_timeout_s": 60, **overrides})


def template(fake) -> dict:
    return fake.rollout.tracked[(NAMESPACE, FULLNAME)].obj["spec"]["template"]


def served(fake) -> str:
    return template(fake)["metadata"]["annotations"][VERSION_ANNOTATION]


def patched_versions(fake) -> list[str]:
    """The model-version each PATCH wrote, in order."""
    return [
        op["value"]
        for call in fake.calls("PATCH", "/deployments/")
        for op in call[3]
        if op["op"] == "replace" and op["path"].endswith("model-version")
    ]


@pytest.mark.triton
def test_deploys_a_published_version(triton, base):
    with cluster(base, 1, plan=lambda v: completes(after=2)) as fake:
        outcome = deploy_cluster(
            config(triton), 2, smoke_wav=probe_wav(), lineage_id="run-9/v2", api_client=fake.api_client()
        )
    assert outcome.outcome == DEPLOYED and outcome.reason == ""
    assert (outcome.previous_version, outcome.serving_version) == (1, 2)
    assert outcome.target == f"kubernetes {NAMESPACE}/{RELEASE}"
    assert [s.name for s in outcome.steps] == ["preflight", "patch", "rollout", "smoke", "window"]
    assert outcome.smoke["model_version"] == "2" and outcome.smoke["response_emotion"] in RESPONSE_EMOTIONS
    assert outcome.window == {"computed": False, "reason": NO_PROMETHEUS}
    assert served(fake) == "2" and template(fake)["metadata"]["annotations"][LINEAGE_ANNOTATION] == "run-9/v2"
    assert template(fake)["spec"]["containers"][0]["args"][0] == f"--model-repository={base}/2"
    assert patched_versions(fake) == ["2"]
    assert rbac_verbs(fake.requests) == {("apps", "deployments", verb) for verb in ("get", "list", "patch")}


@pytest.mark.triton
def test_errors_in_the_metrics_window_roll_back(triton, base):
    """v2 rolls out and answers the smoke request, but Prometheus sees its pods fail: the window rolls it back. The
    window reads this release's series only (the chart's ServiceMonitor labels them with namespace and service)."""
    start, later = per_pod_answers(a=(0, 0)), per_pod_answers(a=(10, 4))  # then 4 errors in 10 requests
    with serve_prometheus() as prometheus, cluster(base, 1) as fake:
        # Each reading asks two queries (requests, latency); the queries list holds the one being answered.
        prometheus.answers = lambda query: (start if len(prometheus.queries) <= 2 else later)(query)
        settings = {"prometheus_url": prometheus.url, "window_s": 0.05}
        outcome = deploy_cluster(config(triton, **settings), 2, smoke_wav=probe_wav(), api_client=fake.api_client())
    assert outcome.outcome == ROLLED_BACK and outcome.serving_version == 1
    assert outcome.reason.startswith("metrics window: error ratio 4/10 = 40.0%")
    assert [s.name for s in outcome.steps] == ["preflight", "patch", "rollout", "smoke", "window", "rollback"]
    assert outcome.window["errors"] == 4 and not outcome.window["passed"]
    assert f'namespace="{NAMESPACE}", service="{FULLNAME}"' in prometheus.queries[0]
    assert patched_versions(fake) == ["2", "1"] and served(fake) == "1"


def test_a_stalled_rollout_is_rolled_back(base):
    """v3's pods crash-loop: the deploy patches back to v2 and says why (no smoke request is sent)."""

    def plan(version):
        return stalls("CrashLoopBackOff", "back-off 1m20s restarting failed container") if version == 3 else completes()

    with cluster(base, 2, plan) as fake:
        outcome = deploy_cluster(config(), 3, smoke_wav=probe_wav(), api_client=fake.api_client())
    assert outcome.outcome == ROLLED_BACK and (outcome.previous_version, outcome.serving_version) == (2, 2)
    assert "ProgressDeadlineExceeded" in outcome.reason and "CrashLoopBackOff (back-off 1m20s" in outcome.reason
    assert [s.name for s in outcome.steps] == ["preflight", "patch", "rollout", "rollback"]
    assert patched_versions(fake) == ["3", "2"]
    back = fake.calls("PATCH", "/deployments/")[1][3]
    assert {"op": "test", "path": "/spec/template/metadata/annotations/empathy-omni.github.io~1model-version",
            "value": "3"} in back  # fmt: skip
    assert served(fake) == "2" and outcome.smoke == {}


@pytest.mark.triton
def test_a_failed_smoke_request_is_rolled_back(triton, base):
    """v3 rolls out, but what answers through the Service is version 2: verification fails, v1 serves again."""
    with cluster(base, 1) as fake:
        outcome = deploy_cluster(config(triton), 3, smoke_wav=probe_wav(), api_client=fake.api_client())
    assert outcome.outcome == ROLLED_BACK and outcome.serving_version == 1
    assert "answered from version '2', expected 3" in outcome.reason
    assert [s.name for s in outcome.steps] == ["preflight", "patch", "rollout", "smoke", "rollback"]
    assert patched_versions(fake) == ["3", "1"] and served(fake) == "1"


def test_a_failed_rollback_is_reported_for_an_sre(base):
    armed = {"refuse the next patch": True}

    def plan(version):  # once v3 rolls, the API server refuses the next patch: the one back to v2
        if version == 3 and armed.pop("refuse the next patch", False):
            fake.errors["patch"].append(403)
        return stalls() if version == 3 else completes()

    with cluster(base, 2, plan) as fake:
        outcome = deploy_cluster(config(), 3, smoke_wav=probe_wav(), api_client=fake.api_client())
    assert outcome.outcome == ROLLBACK_FAILED and outcome.serving_version == 3
    assert "the rollback to v2 failed too" in outcome.reason and "HTTP 403" in outcome.reason
    assert f"kubectl -n {NAMESPACE} rollout undo deployment/{FULLNAME}" in outcome.reason
    assert outcome.steps[-1].name == "rollback" and outcome.steps[-1].detail.startswith("failed: ")


def test_the_version_already_serving_changes_nothing(base):
    with cluster(base, 2) as fake:
        outcome = deploy_cluster(config(), 2, smoke_wav=b"", api_client=fake.api_client())
    assert outcome.outcome == DEPLOYED and outcome.serving_version == 2
    assert outcome.steps[0].detail.startswith("v2 already serves")
    assert not fake.calls("PATCH")


def test_an_unpublished_version_is_refused_before_any_patch(base):
    with cluster(base, 2) as fake, pytest.raises(DeployError) as err:
        deploy_cluster(config(), 4, smoke_wav=b"", api_client=fake.api_client())
    assert str(err.value).startswith(
        f"version 4 was never published to {base}/4: no {base}/4/emotion_omni/config.pbtxt"
    )
    assert not fake.calls("PATCH")


def test_a_missing_release_is_refused_before_any_patch(base):
    with cluster(base, 2) as fake, pytest.raises(DeployError) as err:
        deploy_cluster(config(release="omni-canary"), 3, smoke_wav=b"", api_client=fake.api_client())
    assert "release omni-canary has no emotion-omni-triton Deployment in namespace serving" in str(err.value)
    assert not fake.calls("PATCH")


def test_a_deployment_mid_rollout_is_refused_before_any_patch(base):
    with cluster(base, 2) as fake:
        fake.rollout.tracked[(NAMESPACE, FULLNAME)].obj["spec"]["paused"] = True
        with pytest.raises(DeployError) as err:
            deploy_cluster(config(), 3, smoke_wav=b"", api_client=fake.api_client())
    assert "is mid-rollout (the Deployment is paused" in str(err.value)
    assert not fake.calls("PATCH")


def test_without_credentials_the_published_check_says_so(base, monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with cluster(base, 2) as fake, pytest.raises(DeployError) as err:
        deploy_cluster(config(), 3, smoke_wav=b"", api_client=fake.api_client())
    assert "cannot check that" in str(err.value) and "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert not fake.calls("PATCH")
