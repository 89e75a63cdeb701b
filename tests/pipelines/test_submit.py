"""Submitting and scheduling through the real kfp.Client, against a fake KFP REST API (fake_kfp.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from components.errors import ConfigError
from pipelines.emotion_omni import ClusterSettings
from pipelines.submit import SubmitError, normalize_cron, schedule_run, submit_run
from tests.pipelines.fake_kfp import FakeKFP

GOLDEN = Path(__file__).parent / "golden" / "emotion_omni.yaml"


@pytest.fixture
def kfp_api():
    with FakeKFP() as fake:
        yield fake


def caching(pipeline_spec: dict) -> set:
    return {
        task.get("cachingOptions", {}).get("enableCache", False)
        for task in pipeline_spec["root"]["dag"]["tasks"].values()
    }


def test_submit_sends_the_pipeline_typed_parameters_and_caching(kfp_api, monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    submission = submit_run(
        kfp_api.url,
        params=["epochs=3", "test_fraction=0.25", "train_backend=trainjob", "trainjob_num_nodes=2"],
        run_name="nightly-check",
        enable_caching=False,
        service_account="omni-runner",
        settings=ClusterSettings(shared_pvc="omni-shared"),
    )
    (experiment,) = kfp_api.bodies("POST", "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "emotion-omni"
    (run,) = kfp_api.bodies("POST", "/apis/v2beta1/runs")
    assert run["display_name"] == "nightly-check" and run["experiment_id"] == "exp-1"
    assert run["service_account"] == "omni-runner"
    assert run["runtime_config"]["parameters"] == {
        "epochs": 3,
        "test_fraction": 0.25,
        "train_backend": "trainjob",
        "trainjob_num_nodes": 2,
    }
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "emotion-omni"
    assert caching(spec) == {False}  # --disable-caching reaches every task
    train = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert train["pvcMount"][0]["mountPath"] == "/mnt/omni-shared"  # the settings it was compiled with
    assert submission.id == "run-1" and submission.url.endswith("/#/runs/details/run-1")
    assert set(kfp_api.authorization) == {None}  # no credentials configured, none sent


def test_schedule_normalizes_cron_and_reuses_the_experiment(kfp_api):
    kfp_api.experiments.append({"experiment_id": "exp-7", "display_name": "nightly"})
    job = schedule_run(
        kfp_api.url,
        "0 3 * * *",
        job_name="emotion-omni nightly",
        max_concurrency=2,
        params=["n=120"],
        experiment="nightly",
        enable_caching=True,
    )
    assert not kfp_api.bodies("POST", "/apis/v2beta1/experiments")  # found by name, not created again
    (body,) = kfp_api.bodies("POST", "/apis/v2beta1/recurringruns")
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # KFP's seconds-first format
    assert int(body["max_concurrency"]) == 2 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["experiment_id"] == "exp-7" and body["display_name"] == "emotion-omni nightly"
    assert body["runtime_config"]["parameters"] == {"n": 120}
    assert caching(body["pipeline_spec"]["pipeline_spec"]) == {True}
    assert job.cron == "0 0 3 * * *" and job.id == "rr-1"


def test_a_compiled_package_is_sent_as_is(kfp_api):
    if not GOLDEN.is_file():
        pytest.skip("no golden file yet: OMNI_UPDATE_GOLDEN=1 pytest tests/pipelines -k golden")
    submit_run(kfp_api.url, package=GOLDEN)
    (run,) = kfp_api.bodies("POST", "/apis/v2beta1/runs")
    assert (
        run["pipeline_spec"]["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]["train_backend"]["defaultValue"]
        == "local"
    )
    assert run["runtime_config"]["parameters"] == {}


def test_token_comes_from_the_environment(kfp_api, tmp_path, monkeypatch):
    (tmp_path / "token").write_text("s3cr3t-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "token"))
    submit_run(kfp_api.url, package=GOLDEN if GOLDEN.is_file() else None)
    assert set(kfp_api.authorization) == {"Bearer s3cr3t-token"}
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(SubmitError, match="KF_PIPELINES_SA_TOKEN_PATH=.*missing: no such file"):
        submit_run(kfp_api.url, package=GOLDEN if GOLDEN.is_file() else None)


@pytest.mark.parametrize(
    "param, message",
    [
        (
            "epoch=3",
            "the pipeline has no parameter 'epoch'; known parameters: artifact_location, checkpoint_root, deploy_json, "
            "deploy_target, epochs,",
        ),
        ("epochs=three", "--param epochs='three': epochs must be an integer"),
        ("test_fraction=a lot", "test_fraction must be a number"),
        ("epochs", "expected KEY=VALUE"),
        ("train_backend=slurm", "train_backend must be one of local, trainjob"),
        ("triton_instance_kind=tpu", "triton_instance_kind must be one of cpu, gpu"),
    ],
)
def test_bad_params_fail_before_anything_is_sent(kfp_api, param, message):
    with pytest.raises(SubmitError, match=message.replace("(", r"\(").replace("?", r"\?")):
        submit_run(kfp_api.url, params=[param])
    assert kfp_api.requests == []


def test_a_value_given_twice_is_refused_before_anything_is_sent(kfp_api):
    with pytest.raises(ConfigError, match=r"train_config_json sets \['epochs'\].*pipeline parameters epochs"):
        submit_run(kfp_api.url, params=['train_config_json={"epochs": 3}'])
    assert kfp_api.requests == []


def test_unreachable_host_is_named():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SubmitError, match=f"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}"):
        submit_run(f"http://127.0.0.1:{port}")
    with pytest.raises(SubmitError, match="expected an http\\(s\\) URL"):
        submit_run("127.0.0.1:8888")


def test_http_errors_are_named(kfp_api):
    kfp_api.fail["/apis/v2beta1/runs"].append(401)
    with pytest.raises(SubmitError, match=f"at {kfp_api.url} answered HTTP 401.*KF_PIPELINES_SA_TOKEN_PATH"):
        submit_run(kfp_api.url)


@pytest.mark.parametrize(
    "cron, sent",
    [("0 3 * * *", "0 0 3 * * *"), ("30 0 3 * * 1-5", "30 0 3 * * 1-5"), ("  */15  * * * * ", "0 */15 * * * *")],
)
def test_normalize_cron(cron, sent):
    assert normalize_cron(cron) == sent


def test_bad_cron_and_concurrency(kfp_api):
    with pytest.raises(SubmitError, match="expected 5 fields"):
        schedule_run(kfp_api.url, "@daily")
    with pytest.raises(SubmitError, match="--max-concurrency 0: must be >= 1"):
        schedule_run(kfp_api.url, "0 3 * * *", max_concurrency=0)
    assert kfp_api.requests == []


def test_profile_namespace_reaches_the_experiment(kfp_api):
    submit_run(kfp_api.url, namespace="team-a")
    (experiment,) = kfp_api.bodies("POST", "/apis/v2beta1/experiments")
    assert experiment["namespace"] == "team-a"
    listed = [q for m, p, q, _ in kfp_api.requests if m == "GET" and p == "/apis/v2beta1/experiments"]
    assert listed[0]["namespace"] == ["team-a"]
