"""The registry against the cluster's stack on loopback: `mlflow server` on PostgreSQL with artifacts in S3
(SeaweedFS), and the same PostgreSQL and S3 used directly, as a pipeline step may do either.

The servers start once per session (conftest.py); each test uses its own experiment and model names, so tests
share the server without seeing each other's versions.
"""

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from minio import Minio
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from components.contracts import LINEAGE_TAG
from components.export.model_dir import MODEL_DIR_FILES
from components.registry import RegistryConfig, RegistryError, download_model, promote, register_model, resolve
from components.registry.mlflow_registry import find_version_by_lineage
from tests.components.registry.conftest import SERVER_BUCKET, SERVER_PREFIX, free_port
from tests.components.registry.test_mlflow_registry import _model_dir


def _register(config, model_dir, lineage_id, **kwargs):
    return register_model(
        model_dir, config=config, params={"lr": 3e-4}, metrics={"chrf": 30.0}, lineage_id=lineage_id, **kwargs
    )


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _bucket_keys(s3_server, bucket, prefix):
    endpoint, key, secret = s3_server
    client = Minio(endpoint, access_key=key, secret_key=secret, secure=False)
    return {o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True)}


def _only_run_and_model(client, experiment_name):
    """The single run of `experiment_name` and the logged model it output (or created, if it failed)."""
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    models = client.search_logged_models([experiment.experiment_id])
    assert len(runs) == 1 and len(models) == 1, (runs, models)
    return runs[0], models[0]


def test_round_trip_through_the_server_keeps_the_model_in_s3(mlflow_server, s3_server, tmp_path):
    config = RegistryConfig(mlflow_server.uri, experiment="round-trip", model_name="round-trip")
    model = _model_dir(tmp_path / "model", seed=1)
    report = tmp_path / "report.md"
    report.write_text("# eval\n")

    version = _register(config, model, "kfp-round-trip", artifacts=[report])
    promoted = promote(config, "challenger")
    local = download_model(config, "champion", tmp_path / "download")

    assert (version.version, version.aliases) == ("1", ("challenger",))
    assert promoted.version == "1" and set(promoted.aliases) == {"challenger", "champion"}
    assert _files(local) == _files(model)
    # The server proxies artifacts: the client sees mlflow-artifacts:/..., the bytes live in the bucket.
    model_prefix = f"{SERVER_PREFIX}/{version.source_uri.removeprefix('mlflow-artifacts:/')}/"
    assert _bucket_keys(s3_server, SERVER_BUCKET, model_prefix) == {model_prefix + f for f in MODEL_DIR_FILES}
    run_keys = _bucket_keys(s3_server, SERVER_BUCKET, SERVER_PREFIX)
    assert any(k.endswith(f"/{version.run_id}/artifacts/report.md") for k in run_keys), sorted(run_keys)
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(version.run_id)
    logged_model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert run.info.status == "FINISHED" and logged_model.status == LoggedModelStatus.READY
    assert run.data.tags[LINEAGE_TAG] == logged_model.tags[LINEAGE_TAG] == "kfp-round-trip"
    assert client.get_model_version("round-trip", "1").tags[LINEAGE_TAG] == "kfp-round-trip"


def _all_at_once(monkeypatch, method: str, parties: int) -> None:
    """Hold every call of MlflowClient.`method` until `parties` threads have made one, then let them all go.

    Left alone, one thread would usually create the experiment before the others look it up; held, they all
    find it missing and race to create it, as two pipelines finishing together can.
    """
    barrier = threading.Barrier(parties, timeout=30)
    call = getattr(MlflowClient, method)

    def held(self, *args, **kwargs):
        barrier.wait()
        return call(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, held)


def test_concurrent_registrations_get_distinct_ready_versions(mlflow_server, tmp_path, monkeypatch):
    # A new experiment and model name, so the three race to create both, then to number their versions.
    config = RegistryConfig(mlflow_server.uri, experiment="concurrent", model_name="concurrent")
    models = [_model_dir(tmp_path / f"model{i}", seed=i) for i in range(3)]
    for method in ("create_experiment", "create_registered_model", "create_model_version"):
        _all_at_once(monkeypatch, method, parties=3)

    def register(i):
        return _register(config, models[i], f"kfp-concurrent-{i}")

    with ThreadPoolExecutor(3) as pool:
        versions = list(pool.map(register, range(3)))

    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    client = MlflowClient(mlflow_server.uri)
    for i, version in enumerate(versions):
        stored = client.get_model_version("concurrent", version.version)
        assert stored.status == "READY" and stored.tags[LINEAGE_TAG] == f"kfp-concurrent-{i}"
        assert _files(download_model(config, version.version, tmp_path / f"download{i}")) == _files(models[i])
    assert resolve(config, "challenger").version in {"1", "2", "3"}


def test_a_retried_registration_returns_the_first_version(mlflow_server, tmp_path):
    config = RegistryConfig(mlflow_server.uri, experiment="retry", model_name="retry")
    first = _register(config, _model_dir(tmp_path / "model", seed=1), "kfp-retry")

    again = _register(config, _model_dir(tmp_path / "retrained", seed=2), "kfp-retry")

    assert again == first
    assert find_version_by_lineage(config, "kfp-retry") == first
    client = MlflowClient(mlflow_server.uri)
    assert [v.version for v in client.search_model_versions("name = 'retry'")] == ["1"]
    _only_run_and_model(client, "retry")  # the retry logged nothing


@pytest.fixture()
def wrong_s3_secret(s3_client_env, monkeypatch):
    """A step whose S3 secret is stale (rotated on the server): present, so the preflight passes, but refused.

    boto3's default session and MLflow's S3 clients (cached per endpoint for hours) keep the credentials they
    found first, so both are reset here (or the right secret would be reused) and after the test (or later
    tests would get this one).
    """
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated-away")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # undone after the test: the previous session returns
    _cached_get_s3_client.cache_clear()
    yield
    _cached_get_s3_client.cache_clear()


def test_a_failed_upload_leaves_no_version(mlflow_server, wrong_s3_secret, tmp_path):
    # Artifacts go from this process straight to S3 (the server only records where they are).
    config = RegistryConfig(
        mlflow_server.uri,
        artifact_location="s3://models/upload-fails",
        experiment="upload-fails",
        model_name="upload-fails",
    )

    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        _register(config, _model_dir(tmp_path / "model", seed=1), "kfp-upload-fails")

    assert find_version_by_lineage(config, "kfp-upload-fails") is None
    client = MlflowClient(mlflow_server.uri)
    assert client.search_model_versions("name = 'upload-fails'") == []
    run, logged_model = _only_run_and_model(client, "upload-fails")
    assert run.info.status == "FAILED" and logged_model.status == LoggedModelStatus.FAILED


def test_a_failure_after_the_version_exists_deletes_it(mlflow_server, tmp_path):
    # MLflow reserves the alias 'latest'. RegistryConfig refuses it up front, so it is set behind its back here:
    # the server then refuses it at the last step, after the version was created.
    config = RegistryConfig(mlflow_server.uri, experiment="alias-fails", model_name="alias-fails")
    config.challenger_alias = "latest"
    model = _model_dir(tmp_path / "model", seed=1)

    with pytest.raises(MlflowException, match="'latest' alias name .* is reserved"):
        _register(config, model, "kfp-alias-fails")

    client = MlflowClient(mlflow_server.uri)
    assert client.search_model_versions("name = 'alias-fails'") == []
    run, logged_model = _only_run_and_model(client, "alias-fails")
    assert run.info.status == "FAILED" and logged_model.status == LoggedModelStatus.FAILED
    # So the retry, with the config fixed, registers afresh instead of returning the deleted version.
    retried = _register(dataclasses.replace(config, challenger_alias="challenger"), model, "kfp-alias-fails")
    assert retried.version == "2" and retried.aliases == ("challenger",)


def test_registering_straight_into_the_database_with_s3_artifacts(
    mlflow_server, s3_server, s3_client_env, postgres_server, tmp_path
):
    # The server's own database: what a step registers directly, serving resolves through the server.
    config = RegistryConfig(
        mlflow_server.database_uri, artifact_location="s3://models/direct", experiment="direct", model_name="direct"
    )
    model = _model_dir(tmp_path / "model", seed=1)

    version = _register(config, model, "kfp-direct")

    assert version.source_uri.startswith("s3://models/direct/")
    assert postgres_server.password not in version.tracking_uri
    prefix = version.source_uri.removeprefix("s3://models/") + "/"
    assert _bucket_keys(s3_server, "models", prefix) == {prefix + f for f in MODEL_DIR_FILES}
    assert _files(download_model(config, "challenger", tmp_path / "download")) == _files(model)
    through_server = RegistryConfig(mlflow_server.uri, model_name="direct")
    assert resolve(through_server, "challenger").source_uri == version.source_uri
    assert find_version_by_lineage(through_server, "kfp-direct").version == version.version


def test_an_unreachable_server_fails_fast_naming_the_uri(tmp_path):
    config = RegistryConfig(f"http://pipeline:s3cr3t@127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()

    with pytest.raises(
        RegistryError,
        match=r"cannot reach the MLflow tracking server "
        r"http://pipeline:\*\*\*@127\.0\.0\.1:\d+.*MLFLOW_TRACKING_URI",
    ) as error:
        _register(config, _model_dir(tmp_path / "model", seed=1), "kfp-unreachable")

    assert time.monotonic() - started < 5, "MLflow's own retry loop ran instead of the preflight"
    assert "s3cr3t" not in str(error.value)


@pytest.mark.parametrize(
    ("status", "problem"),
    [(401, "did not accept the credentials"), (403, "denies this user access to the model registry")],
)
def test_refused_credentials_name_the_variables(monkeypatch, status, problem):
    seen = []

    class Refuse(BaseHTTPRequestHandler):
        # What an authenticating MLflow (--app-name basic-auth) or a proxy in front answers without valid credentials.
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):  # keep the test log clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    try:
        with pytest.raises(
            RegistryError,
            match=rf"{problem} \(HTTP {status}\); set now: "
            r"\['MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD'\]"
            r".*MLFLOW_TRACKING_TOKEN",
        ) as error:
            resolve(RegistryConfig(f"http://127.0.0.1:{server.server_port}"), "champion")
    finally:
        server.shutdown()
    assert "wrong" not in str(error.value)
    assert seen == ["Basic cGlwZWxpbmU6d3Jvbmc="]  # base64 of pipeline:wrong: the env reached the request
