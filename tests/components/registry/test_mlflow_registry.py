"""register_model, promote, resolve and download_model against a real MLflow on sqlite in a temp dir.

One registry with two versions is built per module, because MLflow's first use of a fresh database
(schema migrations) costs seconds; tests only read it, except the promotion test, which the others ignore.
"""

import sys
import types

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.contracts import LINEAGE_TAG, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE
from components.registry import (
    RegistryConfig,
    RegistryError,
    download_model,
    promote,
    register_model,
    resolve,
)
from components.registry.connection import check_artifact_store
from components.registry.mlflow_registry import find_version_by_lineage

# MLflow 3.17's tracking store uses a loader strategy SQLAlchemy 2.1 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


def _model_dir(root, seed):
    """A small stand-in for an exported model: the contract files with distinct bytes per version."""
    root.mkdir(parents=True)
    (root / MODEL_CONFIG_FILE).write_text(f'{{"hidden": 32, "seed": {seed}}}')
    (root / MODEL_WEIGHTS_FILE).write_bytes(bytes(range(seed, seed + 200)))
    (root / TOKENIZER_FILE).write_text(f'{{"vocab": {{"hi": {seed}}}}}')
    return root


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    global_uri = mlflow.get_tracking_uri()
    config = RegistryConfig.local(root / "mlflow")
    report = root / "report.md"
    report.write_text("# eval\n")
    models = [_model_dir(root / f"model{i}", seed=i) for i in (1, 2)]
    first = register_model(
        models[0],
        config=config,
        params={"lr": 3e-4, "layers": 2},
        metrics={"user_emotion_accuracy": 0.5, "chrf": 30.0},
        artifacts=[report],
        tags={"git_sha": "abc123"},
    )
    second = register_model(models[1], config=config, params={"lr": 1e-4}, metrics={"chrf": 35.0})
    assert mlflow.get_tracking_uri() == global_uri, "registering must not change MLflow's global tracking URI"
    return types.SimpleNamespace(root=root, config=config, models=models, first=first, second=second)


def test_versions_count_up_and_the_newest_is_challenger(registry):
    assert (registry.first.version, registry.second.version) == ("1", "2")
    assert registry.second.aliases == ("challenger",)
    assert resolve(registry.config, "challenger").version == "2"
    assert resolve(registry.config, 1).aliases == ()


def test_promote_moves_champion(registry):
    assert promote(registry.config, "1").aliases == ("champion",)
    assert resolve(registry.config, "champion").version == "1"

    promoted = promote(registry.config, "challenger")  # whatever the challenger is: version 2

    assert promoted.version == "2" and set(promoted.aliases) == {"challenger", "champion"}
    assert resolve(registry.config, "1").aliases == ()


def test_download_returns_identical_files(registry, tmp_path):
    for ref, model in (("challenger", registry.models[1]), ("1", registry.models[0])):
        local = download_model(registry.config, ref, tmp_path / f"download-{ref}")
        assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in model.iterdir())
        assert all((local / p.name).read_bytes() == p.read_bytes() for p in model.iterdir())
    with pytest.raises(RegistryError, match="not empty"):
        download_model(registry.config, "1", tmp_path / "download-1")


def test_params_metrics_tags_and_artifacts_are_readable_back(registry):
    client = MlflowClient(tracking_uri=registry.config.tracking_uri)
    run = client.get_run(registry.first.run_id)

    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.0003", "layers": "2"}
    assert run.data.metrics == {"user_emotion_accuracy": 0.5, "chrf": 30.0}
    assert run.data.tags["git_sha"] == "abc123"
    assert [a.path for a in client.list_artifacts(registry.first.run_id)] == ["report.md"]
    assert client.get_model_version("emotion-omni", "1").tags == {"git_sha": "abc123"}
    model_id = run.outputs.model_outputs[0].model_id
    assert {m.key: m.value for m in client.get_logged_model(model_id).metrics}["chrf"] == 30.0


def test_unknown_refs_name_what_exists(registry):
    with pytest.raises(RegistryError, match="no alias 'staging'; its aliases are challenger -> 2"):
        resolve(registry.config, "staging")
    with pytest.raises(RegistryError, match=r"no version 7; it has versions \[1, 2\]"):
        resolve(registry.config, 7)
    with pytest.raises(RegistryError, match="no registered model 'other'"):
        resolve(RegistryConfig(registry.config.tracking_uri, model_name="other"), "champion")


@pytest.fixture()
def no_aws_credentials(monkeypatch, tmp_path):
    """An environment where boto3's whole credential chain finds nothing (and never asks the network)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_bad_inputs_fail_before_a_run_starts(registry, tmp_path, no_aws_credentials):
    incomplete = _model_dir(tmp_path / "incomplete", seed=3)
    (incomplete / TOKENIZER_FILE).unlink()
    with pytest.raises(RegistryError, match=r"lacks \['tokenizer.json'\].*Fix: register the directory"):
        register_model(incomplete, config=registry.config, params={}, metrics={})
    s3 = RegistryConfig(registry.config.tracking_uri, artifact_location="s3://mlflow/artifacts", experiment="s3")
    with pytest.raises(RegistryError, match="AWS_ACCESS_KEY_ID"):
        register_model(registry.models[0], config=s3, params={}, metrics={})
    with pytest.raises(RegistryError, match="must all be numbers"):
        register_model(registry.models[0], config=registry.config, params={}, metrics={"chrf": "high"})
    assert resolve(registry.config, "challenger").version == "2"  # no version 3 appeared
    experiment = MlflowClient(tracking_uri=registry.config.tracking_uri).get_experiment_by_name("emotion-omni")
    assert len(MlflowClient(tracking_uri=registry.config.tracking_uri).search_runs([experiment.experiment_id])) == 2


def test_s3_without_credentials_names_the_variables(no_aws_credentials):
    with pytest.raises(RegistryError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.*MLFLOW_S3_ENDPOINT_URL"):
        check_artifact_store("s3://mlflow/artifacts")


def test_s3_without_boto3_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an image without the cluster extra looks like
    with pytest.raises(RegistryError, match="pip install boto3"):
        check_artifact_store("s3://mlflow/artifacts")


def test_unreachable_tracking_database_is_reported_without_the_password(tmp_path):
    missing_dir = RegistryConfig(f"sqlite:///{tmp_path}/absent/mlflow.db")
    with pytest.raises(RegistryError, match="does not exist"):
        resolve(missing_dir, "champion")
    # Port 1 refuses connections; without psycopg2 installed the driver check fires first.
    postgres = RegistryConfig("postgresql+psycopg2://mlflow:s3cr3t@127.0.0.1:1/mlflow", artifact_location="s3://b/a")
    with pytest.raises(RegistryError, match="psycopg2|cannot reach") as error:
        resolve(postgres, "champion")
    assert "s3cr3t" not in str(error.value) and "mlflow:***@127.0.0.1" in str(error.value)


def test_a_lineage_id_registers_once(registry, tmp_path):
    # Its own model and experiment in the module's database: the other tests count the default model's versions.
    config = RegistryConfig(
        registry.config.tracking_uri,
        artifact_location=registry.config.artifact_location,
        experiment="lineage",
        model_name="lineage",
    )
    first = register_model(registry.models[0], config=config, params={}, metrics={}, lineage_id="kfp-1")

    retried = register_model(registry.models[1], config=config, params={}, metrics={}, lineage_id="kfp-1")

    assert retried == first and first.version == "1"
    assert find_version_by_lineage(config, "kfp-1") == first
    assert find_version_by_lineage(config, "kfp-2") is None
    assert register_model(registry.models[1], config=config, params={}, metrics={}, lineage_id="kfp-2").version == "2"
    client = MlflowClient(tracking_uri=config.tracking_uri)
    assert len(client.search_runs([client.get_experiment_by_name("lineage").experiment_id])) == 2
    run = client.get_run(first.run_id)
    logged_model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert run.data.tags[LINEAGE_TAG] == logged_model.tags[LINEAGE_TAG] == "kfp-1"
    assert client.get_model_version("lineage", "1").tags == {LINEAGE_TAG: "kfp-1"}
    with pytest.raises(RegistryError, match="contains a quote"):
        find_version_by_lineage(config, "kfp' OR name != '")


def test_a_version_left_by_a_killed_attempt_is_replaced_on_retry(registry):
    """A pod killed between creating the version and finishing its run leaves no exception to roll back on: the
    retry finds the version's run unfinished, deletes that version and registers again."""
    config = RegistryConfig(
        registry.config.tracking_uri,
        artifact_location=registry.config.artifact_location,
        experiment="killed",
        model_name="killed",
    )
    first = register_model(registry.models[0], config=config, params={}, metrics={}, lineage_id="kfp-9")
    client = MlflowClient(tracking_uri=config.tracking_uri)
    client.update_run(first.run_id, status="RUNNING")  # as the killed attempt left it

    retried = register_model(registry.models[1], config=config, params={}, metrics={}, lineage_id="kfp-9")

    assert (first.version, retried.version) == ("1", "2")
    assert [str(v.version) for v in client.search_model_versions("name = 'killed'")] == ["2"]
    assert find_version_by_lineage(config, "kfp-9") == retried


def test_a_failed_cleanup_is_noted_on_the_original_error(registry, monkeypatch):
    # MLflow reserves the alias 'latest' (RegistryConfig refuses it, so it is set behind its back), so the last
    # step fails after the version exists; then the server "goes away" before the version can be deleted again.
    config = RegistryConfig(
        registry.config.tracking_uri,
        artifact_location=registry.config.artifact_location,
        experiment="cleanup",
        model_name="cleanup",
    )
    config.challenger_alias = "latest"

    def gone(*args, **kwargs):
        raise MlflowException("connection refused")

    monkeypatch.setattr(MlflowClient, "delete_model_version", gone)
    with pytest.raises(MlflowException, match="'latest' alias name") as error:
        register_model(registry.models[0], config=config, params={}, metrics={}, lineage_id="kfp-cleanup")

    assert error.value.__notes__ == [
        "while cleaning up, could not delete the half-registered version 1 of 'cleanup' (connection refused). Fix: "
        f"once {config.display_tracking_uri} answers, call MlflowClient(<that URI>).delete_model_version('cleanup', "
        "'1')."
    ]
    run = MlflowClient(tracking_uri=config.tracking_uri).get_run(find_version_by_lineage(config, "kfp-cleanup").run_id)
    assert run.info.status == "FAILED"  # the steps after the failed one still ran
