"""What a deploy leaves in the registry (components.registry.workflow): version tags for every outcome, the
production alias only for a verified one; and the checks a deploy makes first. Real MLflow on sqlite."""

from __future__ import annotations

import types
from datetime import datetime

import pytest
from mlflow import MlflowClient

from components.contracts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, PRODUCTION_ALIAS, TOKENIZER_FILE
from components.deploy.errors import DeployError
from components.deploy.outcome import DEPLOYED, REFUSED, ROLLBACK_FAILED, ROLLED_BACK, DeployOutcome
from components.registry import RegistryConfig, register_model
from components.registry.workflow import (
    DEPLOY_AT_TAG,
    DEPLOY_LINEAGE_TAG,
    DEPLOY_OUTCOME_TAG,
    DEPLOY_REASON_TAG,
    DEPLOY_TARGET_TAG,
    check_registered,
    record_deployment,
    record_serving,
)

# MLflow 3.17's tracking store uses a loader strategy SQLAlchemy 2.1 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
TARGET = "local 127.0.0.1:8000"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two registered versions (MLflow's first use of a database costs seconds: once per module); version 1 was
    published by the export step."""
    root = tmp_path_factory.mktemp("deploy-registry")
    config = RegistryConfig.local(root / "mlflow")
    for seed in (1, 2):
        model = root / f"model{seed}"
        model.mkdir()
        (model / MODEL_CONFIG_FILE).write_text(f'{{"seed": {seed}}}')
        (model / MODEL_WEIGHTS_FILE).write_bytes(bytes(range(seed, seed + 64)))
        (model / TOKENIZER_FILE).write_text("{}")
        register_model(model, config=config, params={}, metrics={})
    uri, name = config.tracking_uri, config.model_name
    record_serving("1", tracking_uri=uri, model_name=name, repository="/repo/1", published_uri="s3://models/omni/1")
    return types.SimpleNamespace(config=config, uri=uri, name=name, client=MlflowClient(uri, registry_uri=uri))


def production(registry) -> int | None:
    number = registry.client.get_registered_model(registry.name).aliases.get(PRODUCTION_ALIAS)
    return None if number is None else int(number)


def deploy(registry, version: int, outcome: str, reason: str = "") -> tuple[bool, DeployOutcome]:
    result = DeployOutcome(TARGET, version, None, outcome=outcome, reason=reason, lineage_id=f"run-{version}")
    return record_deployment(result, tracking_uri=registry.uri, model_name=registry.name), result


def test_a_verified_deploy_tags_the_version_and_moves_production(registry):
    moved, outcome = deploy(registry, 1, DEPLOYED)
    assert moved and outcome.production_alias_moved
    assert production(registry) == 1
    tags = registry.client.get_model_version(registry.name, "1").tags
    assert (tags[DEPLOY_OUTCOME_TAG], tags[DEPLOY_TARGET_TAG], tags[DEPLOY_LINEAGE_TAG]) == (DEPLOYED, TARGET, "run-1")
    assert tags.get(DEPLOY_REASON_TAG, "") == ""
    assert datetime.fromisoformat(tags[DEPLOY_AT_TAG]).timestamp() == pytest.approx(outcome.started_at, abs=1)

    moved, _ = deploy(registry, 2, DEPLOYED)  # the next verified deploy takes the alias along
    assert moved and registry.client.get_model_version(registry.name, "1").aliases == []
    assert PRODUCTION_ALIAS in registry.client.get_model_version(registry.name, "2").aliases


@pytest.mark.parametrize("ending", [REFUSED, ROLLED_BACK, ROLLBACK_FAILED])
def test_a_deploy_that_failed_leaves_production_where_it_was(registry, ending):
    deploy(registry, 1, DEPLOYED)
    moved, outcome = deploy(registry, 2, ending, reason="p95 latency 3.10 s after 15 s exceeds max_p95_latency_s 2 s")
    assert not moved and not outcome.production_alias_moved
    assert production(registry) == 1
    tags = registry.client.get_model_version(registry.name, "2").tags
    assert tags[DEPLOY_OUTCOME_TAG] == ending and tags[DEPLOY_REASON_TAG].startswith("p95 latency 3.10 s")


def test_an_unregistered_version_is_refused_before_anything_changes(registry):
    assert check_registered(2, tracking_uri=registry.uri, model_name=registry.name).version == "2"
    for call in (
        lambda: check_registered(9, tracking_uri=registry.uri, model_name=registry.name),
        lambda: deploy(registry, 9, DEPLOYED),
    ):
        with pytest.raises(DeployError, match=r"cannot deploy version 9 of 'emotion-omni'.*versions \[1, 2\]"):
            call()
    with pytest.raises(DeployError, match="no registered model 'other'"):
        check_registered(1, tracking_uri=registry.uri, model_name="other")
