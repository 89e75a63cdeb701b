"""deploy_local / rollback_local against a real tritonserver in explicit mode, on a served repository holding the tiny
model as v1, v2 and a broken v3, behind the admin key. One server for the module; the deploys run in order:
refusals before any change, v2 under load, broken v3, rollback, a window that fails, a version already serving, a
first deploy onto nothing."""

from __future__ import annotations

import json
import logging
import os
import re
import time

import pytest

from components.contracts import (
    DEPLOYMENTS_FILE,
    SAMPLE_RATE,
    TRITON_CANDIDATE_MODEL_NAME,
    TRITON_MODEL_NAME,
)
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError, VerificationFailed
from components.deploy.outcome import DEPLOYED, REFUSED, ROLLED_BACK, DeployOutcome
from serving.deploy_history import DeploymentHistory
from serving.deploy_local import deploy_local, rollback_local
from serving.launcher import TritonConfig, TritonServer, free_ports
from serving.repository import CONFIG_FILE
from serving.repository_api import RepositoryAPI
from serving.smoke import probe_wav, smoke_request
from serving.steady_load import SteadyLoad
from serving.versions import pin_version
from tests.conftest import one_instance_repository

KEY_ENV = "OMNI_TEST_DEPLOY_KEY"
KEY = "deploy-test-key-93b2"


# --- the history and the probe: no server -------------------------------------------------------------------------
def _record(version, previous, outcome, serving):
    return DeployOutcome("local x", version, previous, outcome=outcome, serving_version=serving)


def test_history_knows_what_serves_and_what_served_before(tmp_path):
    history = DeploymentHistory(tmp_path / DEPLOYMENTS_FILE)
    assert history.records() == [] and history.serving() is None and history.previous() is None
    history.record(_record(2, 1, DEPLOYED, 2))
    assert (history.serving(), history.previous()) == (2, 1)
    history.record(_record(3, 2, REFUSED, 2))
    history.record(_record(4, 2, ROLLED_BACK, 2))  # v4 served briefly, failed: never a rollback target
    assert (history.serving(), history.previous()) == (2, 1)
    history.record(_record(1, 2, DEPLOYED, 1))  # the rollback
    assert (history.serving(), history.previous()) == (1, 2)
    assert [r.version for r in DeploymentHistory(history.path).records()] == [2, 3, 4, 1]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("text", ["{not json", '{"a": 1}', '[{"unknown": 1}]'])
def test_a_corrupt_history_is_an_error_naming_the_file(tmp_path, text):
    path = tmp_path / DEPLOYMENTS_FILE
    path.write_text(text)
    with pytest.raises(DeployError, match=f"{path} is not a deploy history.*move it aside"):
        DeploymentHistory(path).previous()


def test_rollback_with_nothing_before_is_refused(tmp_path):
    config = DeployConfig(target="local", repository=str(tmp_path), url="127.0.0.1:1", window_s=0)
    with pytest.raises(DeployError, match="no version to roll back to.*--to-version N"):
        rollback_local(config, smoke_wav=probe_wav())


def test_the_probe_is_a_deterministic_voiced_second_and_a_half():
    import io

    import soundfile as sf

    wav = probe_wav()
    assert wav == probe_wav()
    wave, rate = sf.read(io.BytesIO(wav))
    assert rate == SAMPLE_RATE and len(wave) == int(1.5 * SAMPLE_RATE)
    assert 0.2 < abs(wave).max() <= 0.31 and abs(wave[0]) < 0.01  # faded in: no click


# --- the live deploys -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo(tiny_model_dir, tmp_path_factory):
    repo = tmp_path_factory.mktemp("served")
    for version in (1, 2, 3):  # the deploy moves a model the same way whatever its instance count
        one_instance_repository(tiny_model_dir, repo, version=version)
    # v3's weights are bytes safetensors cannot read: it fails in initialize, as a broken export would.
    (repo / TRITON_MODEL_NAME / "3" / "weights" / "model.safetensors").write_bytes(b"not a safetensors file")
    pin_version(repo, TRITON_MODEL_NAME, 1)
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    config = TritonConfig(
        model_repository=str(repo),
        admin_key=KEY,
        startup_timeout_s=300,
        work_dir=str(tmp_path_factory.mktemp("triton")),
    )
    with pytest.MonkeyPatch.context() as env, TritonServer(config) as server:
        env.setenv(KEY_ENV, KEY)
        yield server


@pytest.fixture
def config(server, repo):
    return DeployConfig(
        target="local",
        repository=str(repo),
        url=server.http_url,
        grpc_url=server.grpc_url,
        admin_key_env=KEY_ENV,
        window_s=0,
        poll_s=1,
    )


@pytest.fixture(scope="module")
def wav():
    return probe_wav()


@pytest.fixture(scope="module")
def registry(repo, tmp_path_factory):
    """An MLflow registry holding versions 1-3 (the served repository's weights; v3's broken like its copy there):
    the deploys below go through serving.deploy.deploy(), the entry the pipeline and `omni deploy` share, which moves
    the production alias only after a verified rollout."""
    from components.registry import RegistryConfig, register_model

    config = RegistryConfig.local(tmp_path_factory.mktemp("registry"))
    for version in (1, 2, 3):
        register_model(repo / TRITON_MODEL_NAME / str(version) / "weights", config=config, params={}, metrics={})
    return config


def production(registry) -> int | None:
    from mlflow import MlflowClient

    aliases = (
        MlflowClient(registry.tracking_uri, registry_uri=registry.tracking_uri)
        .get_registered_model(registry.model_name)
        .aliases
    )
    return int(aliases["production"]) if "production" in aliases else None


def deploy_recorded(config, registry, version, wav, **kwargs) -> DeployOutcome:
    from serving.deploy import deploy

    recorded = {"tracking_uri": registry.tracking_uri, "model_name": registry.model_name}
    return deploy(config, version, smoke_wav=wav, **recorded, **kwargs)


def _until_answered_by(load: SteadyLoad, version: str, count: int = 3, bound_s: float = 30.0) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if sum(r.model_version == version for r in load.snapshot().records) >= count:
            return
        time.sleep(0.2)


def _root_config(repo):
    return (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text()


@pytest.mark.triton
def test_bad_input_is_refused_before_any_change(config, repo, wav, monkeypatch):
    before = _root_config(repo)
    with pytest.raises(DeployError, match=r"version 9 was never published .*versions \[1, 2, 3\]"):
        deploy_local(config, 9, smoke_wav=wav)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(DeployError, match=f"\\${KEY_ENV} is not set: export it"):
        deploy_local(config, 2, smoke_wav=wav)
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    with pytest.raises(DeployError, match=f"refused the restricted-API key in \\${KEY_ENV}") as excinfo:
        deploy_local(config, 2, smoke_wav=wav)
    assert "not-the-key" not in str(excinfo.value)
    monkeypatch.setenv(KEY_ENV, KEY)
    [port] = free_ports("127.0.0.1", 1)
    nowhere = DeployConfig(**{**config.to_dict(), "grpc_url": f"127.0.0.1:{port}"})
    with pytest.raises(DeployError, match=f"cannot reach Triton's gRPC port at 127.0.0.1:{port}"):
        deploy_local(nowhere, 2, smoke_wav=wav)
    assert _root_config(repo) == before
    assert not (repo / TRITON_CANDIDATE_MODEL_NAME).exists() and not (repo / DEPLOYMENTS_FILE).exists()


@pytest.mark.triton
def test_deploy_v2_under_load_loses_no_request(config, server, repo, registry, wav, caplog):
    caplog.set_level(logging.INFO, logger="omni.deploy")
    with SteadyLoad(server.http_url, wav, rate_per_s=2.0, max_in_flight=2, timeout_s=30.0) as load:
        outcome = deploy_recorded(config, registry, 2, wav, lineage_id="run-2")
        _until_answered_by(load, "2")  # callers' requests, not only the deploy's smoke, reach the new version
    summary = load.report.summary(slow_s=2.0)
    print(json.dumps({"load": summary, "steps": [s.__dict__ for s in outcome.steps]}, indent=1))
    assert outcome.outcome == DEPLOYED, outcome.lines()
    assert (outcome.previous_version, outcome.serving_version) == (1, 2)
    assert [s.name for s in outcome.steps] == [
        "preflight", "load candidate", "smoke candidate", "swap emotion_omni", "unload candidate", "verify", "window"
    ]  # fmt: skip
    assert outcome.smoke["model_version"] == "2" and outcome.smoke["response_emotion"]
    assert summary["requests"] > 0 and summary["failed"] == 0, summary["errors"]
    assert set(summary["versions"]) <= {"1", "2"} and "2" in summary["versions"]
    assert not (repo / TRITON_CANDIDATE_MODEL_NAME).exists()
    assert "versions: [2]" in _root_config(repo)
    assert "deploy v2: deployed" in caplog.text and KEY not in caplog.text
    [record] = DeploymentHistory(repo / DEPLOYMENTS_FILE).records()
    assert record.to_dict() == {**outcome.to_dict(), "production_alias_moved": False}  # recorded before MLflow
    assert outcome.production_alias_moved and production(registry) == 2


@pytest.mark.triton
def test_a_version_that_fails_to_load_is_refused_and_the_old_one_serves_on(config, server, repo, registry, wav):
    outcome = deploy_recorded(config, registry, 3, wav)
    assert outcome.outcome == REFUSED, outcome.lines()
    assert f"could not load {TRITON_CANDIDATE_MODEL_NAME}" in outcome.reason
    assert re.search(r"could not load Emotion Omni from \S+/3/weights: SafetensorError", outcome.reason)  # model.py's
    assert [s.name for s in outcome.steps] == ["preflight", "load candidate", "unload candidate"]
    assert outcome.serving_version == 2 and not (repo / TRITON_CANDIDATE_MODEL_NAME).exists()
    assert smoke_request(server.http_url, wav, expect_version=2)["model_version"] == "2"
    assert "versions: [2]" in _root_config(repo)
    assert production(registry) == 2 and not outcome.production_alias_moved  # production unchanged


@pytest.mark.triton
def test_an_unregistered_version_is_refused_before_anything_changes(config, repo, registry, wav):
    (repo / TRITON_MODEL_NAME / "9").mkdir()  # on disk, but the registry never saw it
    before = _root_config(repo)
    try:
        with pytest.raises(DeployError, match=r"cannot deploy version 9 of 'emotion-omni'.*versions \[1, 2, 3\]"):
            deploy_recorded(config, registry, 9, wav)
    finally:
        (repo / TRITON_MODEL_NAME / "9").rmdir()
    assert _root_config(repo) == before and production(registry) == 2


@pytest.mark.triton
def test_smoke_request_names_what_failed(server, wav):
    with pytest.raises(VerificationFailed, match="answered from version '2', expected 7"):
        smoke_request(server.http_url, wav, expect_version=7)
    with pytest.raises(VerificationFailed, match=f"smoke request to {TRITON_CANDIDATE_MODEL_NAME} .* failed"):
        smoke_request(server.http_url, wav, model_name=TRITON_CANDIDATE_MODEL_NAME)


@pytest.mark.triton
def test_rollback_returns_to_the_version_before(config, repo, registry, wav, monkeypatch, capsys):
    """`omni rollback`, as a user runs it: the version before v2, verified, and production moved back to it."""
    from omni.deploy import rollback

    monkeypatch.setenv("TRITON_ADMIN_KEY", KEY)  # the CLI reads the key where `omni serve` does
    flags = {"repository": repo, "url": config.url, "grpc_url": config.grpc_url, "window_s": 0}
    outcome = rollback(**flags, tracking_uri=registry.tracking_uri)
    assert outcome.outcome == DEPLOYED, outcome.lines()
    assert capsys.readouterr().out.startswith(f"deploy v1 to local {repo} at {config.url} (was v2): deployed")
    assert production(registry) == 1
    assert (outcome.version, outcome.previous_version, outcome.serving_version) == (1, 2, 1)
    assert outcome.steps[0].detail.startswith("rollback: ")
    history = DeploymentHistory(repo / DEPLOYMENTS_FILE)
    assert (history.serving(), history.previous()) == (1, 2)


@pytest.mark.triton
def test_a_failed_metrics_window_rolls_back_automatically(config, server, repo, wav):
    """A p95 threshold no reply can meet: v2 serves, the window fails it under load, v1 serves again."""
    strict = DeployConfig(
        **{**config.to_dict(), "metrics_url": server.metrics_url, "window_s": 4.0, "max_p95_latency_s": 1e-4}
    )
    with SteadyLoad(server.http_url, wav, rate_per_s=2.0, max_in_flight=2, timeout_s=30.0) as load:
        outcome = deploy_local(strict, 2, smoke_wav=wav)
    assert outcome.outcome == ROLLED_BACK, outcome.lines()
    assert outcome.reason.startswith("metrics window: p95 latency")
    assert outcome.window["passed"] is False and outcome.window["requests"] > 0
    assert [s.name for s in outcome.steps][-3:] == ["window", "rollback emotion_omni", "verify rollback"]
    assert outcome.serving_version == 1 and outcome.smoke["model_version"] == "1"
    assert load.report.summary(slow_s=2.0)["failed"] == 0
    history = DeploymentHistory(repo / DEPLOYMENTS_FILE)
    assert (history.serving(), history.previous()) == (1, 2)  # the failed v2 did not become "what served"


@pytest.mark.triton
def test_the_version_already_serving_changes_nothing(config, repo, wav):
    before = _root_config(repo)
    outcome = deploy_local(config, 1, smoke_wav=wav)
    assert (outcome.outcome, outcome.reason, outcome.serving_version) == (DEPLOYED, "already serving", 1)
    assert [s.name for s in outcome.steps] == ["preflight"] and _root_config(repo) == before
    assert os.environ[KEY_ENV] == KEY


@pytest.mark.triton
def test_a_first_deploy_loads_the_version_directly(config, repo, wav):
    """Nothing serves (a server started with nothing loaded, as the pipeline's deploy starts one): no candidate, the
    version loads under its own name; a broken one is refused and leaves the pin as it was."""
    RepositoryAPI(config.grpc_url, KEY).unload(TRITON_MODEL_NAME)
    before = _root_config(repo)
    refused = deploy_local(config, 3, smoke_wav=wav)
    assert (refused.outcome, refused.previous_version, refused.serving_version) == (REFUSED, None, None)
    assert "SafetensorError" in refused.reason and _root_config(repo) == before
    outcome = deploy_local(config, 2, smoke_wav=wav)
    assert outcome.outcome == DEPLOYED, outcome.lines()
    assert (outcome.previous_version, outcome.serving_version) == (None, 2)
    assert [s.name for s in outcome.steps] == ["preflight", "load", "verify"]
    assert smoke_request(config.url, wav, expect_version=2)["model_version"] == "2"
