"""The serving champion's metrics on the challenger's evaluation split, for the gate's comparison.

The champion's registered metrics serve when its evaluation scored the same turns (the split fingerprint tag its
run carries matches the challenger's). Otherwise, after a dataset change, the champion is downloaded and evaluated
again on the challenger's split: comparing scores from different turns would promote or block on noise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import ConfigError
from components.registry.config import RegistryConfig
from components.registry.connection import open_client
from components.registry.gate import ChampionMetrics
from components.registry.mlflow_registry import download_model

# The MLflow run tag that records which turns the registered metrics were measured on (evaluation.split).
EVAL_SPLIT_TAG = "omni.eval_split_fingerprint"


def champion_version(config: RegistryConfig, client: MlflowClient | None = None) -> str | None:
    """The version the champion alias points at; None when the model or the alias does not exist yet."""
    client = client or open_client(config)
    try:
        registered = client.get_registered_model(config.model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None
    version = registered.aliases.get(config.champion_alias)
    return None if version is None else str(version)


def champion_metrics(config: RegistryConfig, fingerprint: str, dataset_dir: Path | None) -> ChampionMetrics | None:
    """The champion's metrics on the split `fingerprint` names; None when there is no champion.

    `dataset_dir` holds that split; it is needed only when the champion must be evaluated again (None then raises).
    """
    client = open_client(config)  # one connection check for both lookups
    version = champion_version(config, client)
    if version is None:
        return None
    run = client.get_run(client.get_model_version(config.model_name, version).run_id)
    if run.data.tags.get(EVAL_SPLIT_TAG) == fingerprint:
        return ChampionMetrics(version, dict(run.data.metrics), source="stored")
    if dataset_dir is None:
        raise ConfigError(
            f"champion v{version} was evaluated on another split "
            f"({run.data.tags.get(EVAL_SPLIT_TAG) or 'not recorded'}, not {fingerprint}), and no dataset "
            "was given to evaluate it again. Fix: pass the challenger's dataset directory."
        )
    from components.evaluation.evaluate import evaluate_model  # torch and the model: only on this path

    print(f"champion v{version} was evaluated on another split: evaluating it again on this one")
    with tempfile.TemporaryDirectory(prefix="champion-") as work:
        model_dir = download_model(config, version, Path(work) / "model")
        evaluation = evaluate_model(model_dir, Path(dataset_dir), Path(work) / "evaluation", progress=False)
        return ChampionMetrics(version, evaluation.summary(), source="re-evaluated")
