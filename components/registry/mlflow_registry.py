"""Register an exported model directory in MLflow, move aliases, resolve and download versions.

    version = register_model(model_dir, config=config, params=params, metrics=result.summary(),
                             artifacts=report.files())            # -> version N, alias 'challenger'
    promote(config, version.version)                              # alias 'champion' -> version N
    local_dir = download_model(config, "champion", Path("/models/download"))

With `lineage_id` (the KFP run's ID) registration is retry-safe: a second call with the same ID returns the
version the first one made instead of logging a duplicate, and a registration that fails part-way deletes the
version it created, so a retry never finds a half-registered one.

The model is a plain directory (config + safetensors + tokenizer), not an MLflow flavor, so it is stored
the MLflow 3 way without an MLmodel file: a LoggedModel created from the run holds the files and the
metrics, and the registered version's source is that LoggedModel's artifact location. In the MLflow UI the
run lists the model as its output and the model lists its registered versions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Experiment, LoggedModelOutput, LoggedModelStatus, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from components.contracts import LINEAGE_TAG
from components.export.model_dir import check_model_dir as model_dir_contract
from components.registry.config import RegistryConfig
from components.registry.connection import (
    RegistryError,
    artifact_progress_bars_off,
    check_artifact_store,
    is_database_uri,
    open_client,
)


@dataclass
class StageRun:
    """One training stage, logged as a child run of the registering run: its own params, loss curves (per-step
    metric history), summary metrics and files (loss curve PNG, step log)."""

    name: str  # run name, e.g. "stage 1: thinker"
    params: dict[str, object]
    metrics: dict[str, float]  # final figures (steps, throughput, ...)
    history: list[dict[str, float]]  # rows with a "step" key and one value per logged metric
    artifacts: Sequence[Path] = ()


# MLflow's log_batch limits: at most 100 params and 1000 metrics per request.
_MAX_BATCH_PARAMS, _MAX_BATCH_METRICS = 100, 1000
# KFP run IDs are 36-character UUIDs; MLflow allows tag values far longer, this only catches a wrong argument.
_MAX_LINEAGE_ID = 250


@dataclass
class RegisteredVersion:
    name: str
    version: str  # "1", "2", ...: a string, like the version arguments MLflow's API takes
    run_id: str  # the run that registered it, holding params, metrics and reports
    source_uri: str  # where the model files live (file://... or s3://...)
    tracking_uri: str  # password masked: for display and metadata; connect with a RegistryConfig
    aliases: tuple[str, ...] = ()


def register_model(
    model_dir: Path,
    *,
    config: RegistryConfig,
    params: dict[str, object],
    metrics: dict[str, float],
    artifacts: Sequence[Path] = (),
    tags: dict[str, str] | None = None,
    stages: Sequence[StageRun] = (),
    lineage_id: str | None = None,
) -> RegisteredVersion:
    """Log a run with `params`, `metrics` and `artifacts`, store `model_dir` as its model, register it.

    The new version gets the challenger alias. `artifacts` (plots, reports, loss curves) land at the run's
    artifact root under their file names; `tags` go on the run, the logged model and the version; each of
    `stages` becomes a child run. Inputs, the database and the artifact store are checked before the run
    starts; a failure after that marks the run and the logged model FAILED and deletes the version if one
    was already created.

    `lineage_id` is tagged (LINEAGE_TAG) on the runs, the logged model and the version. If a version of the
    model already carries it and its run finished, that version is returned unchanged and nothing is logged: a
    retried pipeline step keeps its run ID and must not register the same model twice.
    """
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    artifacts = [Path(p) for p in artifacts]
    _check_artifacts(artifacts)
    for stage in stages:
        _check_artifacts([Path(p) for p in stage.artifacts])
    tags = {key: str(value) for key, value in (tags or {}).items()}
    str_params = {key: str(value) for key, value in params.items()}
    try:
        float_metrics = {key: float(value) for key, value in metrics.items()}
    except (TypeError, ValueError) as error:
        raise RegistryError(
            f"metrics must all be numbers ({error}). Fix: pass EvalResult.summary() or another dict of floats."
        ) from None

    if lineage_id is not None:
        _check_lineage_id(lineage_id)
        tags[LINEAGE_TAG] = lineage_id

    client = open_client(config)
    if lineage_id is not None and (existing := _find_by_lineage(client, config, lineage_id)) is not None:
        if client.get_run(existing.run_id).info.status == "FINISHED":
            return existing
        # An attempt killed between creating the version and finishing its run (an evicted pod: no exception, no
        # roll-back) left it half-registered; it goes, and this attempt registers the model again.
        client.delete_model_version(config.model_name, existing.version)
    experiment = _experiment(client, config)
    # Checked before the run starts: MLflow itself would fail only at the first upload, leaving a dead run.
    check_artifact_store(experiment.artifact_location)
    run_id = client.create_run(experiment.experiment_id, tags=tags).info.run_id
    model_id = version = None
    try:
        model = client.create_logged_model(
            experiment.experiment_id, name=config.model_name, source_run_id=run_id, params=str_params, tags=tags
        )
        model_id = model.model_id
        client.log_model_artifacts(model_id, str(model_dir))
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        now_ms = int(time.time() * 1000)
        _log_batch(
            client,
            run_id,
            # model_id attaches each metric to the LoggedModel too, so the UI's model view shows it.
            [Metric(key, value, now_ms, 0, model_id=model_id) for key, value in float_metrics.items()],
            [Param(key, value) for key, value in str_params.items()],
        )
        for stage in stages:
            _log_stage(client, experiment.experiment_id, run_id, stage, tags)
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
        client.finalize_logged_model(model_id, LoggedModelStatus.READY)
        version = _create_version(client, config, model.artifact_location, run_id, model_id, tags)
        # The link mlflow.register_model records on the LoggedModel; the UI reads it to list its versions.
        client.set_logged_model_tags(
            model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([{"name": config.model_name, "version": version}])}
        )
        client.set_terminated(run_id)
        # Last: until here a failure leaves the previous challenger in place, and deleting the new version
        # below undoes everything a reader of the registry could have seen.
        _set_alias(client, config.model_name, config.challenger_alias, version)
    except BaseException as error:
        _roll_back(client, config, run_id, model_id, version, error)
        raise
    return _resolve(client, config, version)


def _set_alias(client: MlflowClient, name: str, alias: str, version: str, attempts: int = 4) -> None:
    """set_registered_model_alias, again when it loses a race: MLflow inserts an alias it does not find, so two
    registrations moving the same alias at once can both insert, and one fails on the unique key. The winner's row
    exists by then, and the next attempt updates it."""
    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(name, alias, version)
            return
        except MlflowException as error:
            if attempt == attempts - 1 or not any(
                s in str(error) for s in ("UniqueViolation", "UNIQUE constraint", "duplicate key", "already exists")
            ):
                raise
            time.sleep(0.1 * (attempt + 1))


def find_version_by_lineage(config: RegistryConfig, lineage_id: str) -> RegisteredVersion | None:
    """The version of config.model_name that register_model(..., lineage_id=lineage_id) created, or None."""
    _check_lineage_id(lineage_id)
    return _find_by_lineage(open_client(config), config, lineage_id)


def promote(config: RegistryConfig, version: str | int, alias: str | None = None) -> RegisteredVersion:
    """Point `alias` (default: the champion alias) at `version`, a version number or an existing alias.

    `promote(config, "challenger")` promotes whatever the challenger alias points at.
    """
    client = open_client(config)
    target = _resolve(client, config, version)
    client.set_registered_model_alias(config.model_name, alias or config.champion_alias, target.version)
    return _resolve(client, config, target.version)


def resolve(config: RegistryConfig, ref: str | int) -> RegisteredVersion:
    """The registered version that `ref` (an alias such as 'champion', or a version number) names."""
    return _resolve(open_client(config), config, ref)


def download_model(config: RegistryConfig, ref: str | int, dst: Path) -> Path:
    """Download the model files of version or alias `ref` under `dst` and return the directory holding them.

    `dst` must be missing or empty, so files of two versions can never mix.
    """
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise RegistryError(
            f"download destination {dst} is not empty; files left from another version would mix with these. "
            "Fix: pass a new or empty directory."
        )
    version = resolve(config, ref)
    check_artifact_store(version.source_uri)
    with artifact_progress_bars_off():
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=version.source_uri, dst_path=str(dst), tracking_uri=config.tracking_uri
            )
        )
    check_model_dir(local)
    return local


def check_model_dir(model_dir: Path) -> None:
    """Raise RegistryError unless `model_dir` holds what Triton's model and the responder load: not worth registering
    otherwise."""
    model_dir_contract(
        model_dir, error=RegistryError, fix="register the directory the export step wrote (save_pretrained)"
    )


def _log_batch(client: MlflowClient, run_id: str, metrics: list[Metric], params: list[Param]) -> None:
    """log_batch in chunks MLflow accepts (a model config flattens to more than 100 params)."""
    for i in range(0, len(params), _MAX_BATCH_PARAMS):
        client.log_batch(run_id, params=params[i : i + _MAX_BATCH_PARAMS])
    for i in range(0, len(metrics), _MAX_BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + _MAX_BATCH_METRICS])


def _log_stage(
    client: MlflowClient, experiment_id: str, parent_run_id: str, stage: StageRun, tags: dict[str, str]
) -> None:
    """One training stage as a finished child run of `parent_run_id`."""
    run_id = client.create_run(
        experiment_id, tags={**tags, MLFLOW_PARENT_RUN_ID: parent_run_id, MLFLOW_RUN_NAME: stage.name}
    ).info.run_id
    now_ms = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now_ms, 0) for key, value in stage.metrics.items()]
    for row in stage.history:  # the loss curves, as MLflow metric history: the UI draws them per stage
        step = int(row["step"])
        metrics += [Metric(key, float(value), now_ms, step) for key, value in row.items() if key != "step"]
    _log_batch(client, run_id, metrics, [Param(key, str(value)) for key, value in stage.params.items()])
    for path in stage.artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)


def _check_artifacts(artifacts: list[Path]) -> None:
    missing = [str(p) for p in artifacts if not p.exists()]
    if missing:
        raise RegistryError(f"artifacts {missing} do not exist. Fix: write them before registering, or drop them.")
    names = [p.name for p in artifacts]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise RegistryError(
            f"artifacts share the names {clashes}; they all land at the run's artifact root, so one would "
            "overwrite another. Fix: rename them or log their parent directory instead."
        )


def _experiment(client: MlflowClient, config: RegistryConfig) -> Experiment:
    """The configured experiment, created with config.artifact_location if it does not exist yet."""
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        if config.artifact_location is None and is_database_uri(config.tracking_uri):
            raise RegistryError(
                f"experiment {config.experiment!r} does not exist yet and no artifact_location is set, so MLflow "
                "would store artifacts in ./mlruns under the current directory. Fix: set "
                "RegistryConfig.artifact_location (an absolute dir or s3:// URI)."
            )
        try:
            return client.get_experiment(
                client.create_experiment(config.experiment, artifact_location=config.artifact_location)
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            # A parallel registration created it since the lookup: use that one, checked like any other.
            experiment = client.get_experiment_by_name(config.experiment)
    if experiment.lifecycle_stage != "active":
        raise RegistryError(
            f"experiment {config.experiment!r} is deleted in {config.display_tracking_uri}. Fix: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or configure another name."
        )
    if config.artifact_location and _as_uri(experiment.artifact_location) != _as_uri(config.artifact_location):
        raise RegistryError(
            f"experiment {config.experiment!r} already stores artifacts at {experiment.artifact_location}, not at "
            f"the configured {config.artifact_location}; MLflow fixes an experiment's location at creation. "
            "Fix: set artifact_location to the existing one, or use a new experiment name."
        )
    return experiment


def _as_uri(location: str) -> str:
    """A plain absolute path as a file:// URI, so '/a/b' and 'file:///a/b' compare equal."""
    uri = location if urlsplit(location).scheme else Path(location).as_uri()
    return uri.rstrip("/")


def _create_version(
    client: MlflowClient, config: RegistryConfig, source: str, run_id: str, model_id: str, tags: dict[str, str]
) -> str:
    """Create the next version of the registered model (and the model itself, the first time) from `source`."""
    try:
        client.get_registered_model(config.model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(config.model_name)
        except MlflowException as error:
            # Two pipelines registering the first version at once: the other one created it, which is fine.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    # source is the LoggedModel's own location, not 'models:/<model_id>': MLflow resolves the latter
    # through the process-wide tracking URI, which may point at a different store than this client.
    created = client.create_model_version(config.model_name, source=source, run_id=run_id, tags=tags, model_id=model_id)
    return str(created.version)


def _roll_back(
    client: MlflowClient,
    config: RegistryConfig,
    run_id: str,
    model_id: str | None,
    version: str | None,
    error: BaseException,
) -> None:
    """Undo a failed registration: delete the version it created, mark the logged model and the run FAILED.

    Best effort, as the failure may be the server going away: a step that fails too is noted on `error`
    (with the command that finishes it by hand) rather than replacing it, so the cause stays the one raised.
    """
    steps = []
    if version is not None:
        steps.append(
            (
                f"delete the half-registered version {version} of {config.model_name!r}",
                f"delete_model_version({config.model_name!r}, {version!r})",
                lambda: client.delete_model_version(config.model_name, version),
            )
        )
    if model_id is not None:
        steps.append(
            (
                f"mark the logged model {model_id} FAILED",
                f"finalize_logged_model({model_id!r}, 'FAILED')",
                lambda: client.finalize_logged_model(model_id, LoggedModelStatus.FAILED),
            )
        )
    steps.append(
        (
            f"mark the run {run_id} FAILED",
            f"set_terminated({run_id!r}, 'FAILED')",
            lambda: client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED)),
        )
    )
    for what, by_hand, step in steps:
        try:
            step()
        except Exception as cleanup_error:  # any failure: the next steps still run, and `error` is still raised
            error.add_note(
                f"while cleaning up, could not {what} ({cleanup_error}). Fix: once "
                f"{config.display_tracking_uri} answers, call MlflowClient(<that URI>).{by_hand}."
            )


def _check_lineage_id(lineage_id: str) -> None:
    # It goes inside a quoted MLflow search filter, whose parser has no escape for quotes.
    if not lineage_id.strip() or any(c in lineage_id for c in "'\"`\\") or len(lineage_id) > _MAX_LINEAGE_ID:
        raise RegistryError(
            f"lineage_id {lineage_id!r} is empty, longer than {_MAX_LINEAGE_ID} characters or contains a quote or "
            "backslash. Fix: pass the KFP run ID ('local-<utc time>' outside KFP), or None for no lineage."
        )


def _find_by_lineage(client: MlflowClient, config: RegistryConfig, lineage_id: str) -> RegisteredVersion | None:
    found = client.search_model_versions(f"name = '{config.model_name}' AND tags.`{LINEAGE_TAG}` = '{lineage_id}'")
    if not found:
        return None
    # One, unless registrations with the same ID ran at once (not retries); the first one is the original.
    return _resolve(client, config, min(int(v.version) for v in found))


def _resolve(client: MlflowClient, config: RegistryConfig, ref: str | int) -> RegisteredVersion:
    name, ref = config.model_name, str(ref)
    try:
        registered = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(
            f"no registered model {name!r} in {config.display_tracking_uri}. Fix: run register_model first, or "
            "check model_name and tracking_uri."
        ) from None
    if ref.isdigit():
        number = ref
    elif ref in registered.aliases:
        number = registered.aliases[ref]
    else:
        raise RegistryError(
            f"model {name!r} has no alias {ref!r}; its aliases are {_aliases(registered.aliases)}. Fix: pass a "
            f"version number, or promote(config, <version>, alias={ref!r}) first."
        )
    try:
        version = client.get_model_version(name, number)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        versions = sorted((v.version for v in client.search_model_versions(f"name = '{name}'")), key=int)
        raise RegistryError(
            f"model {name!r} has no version {number}; it has versions {versions} and aliases "
            f"{_aliases(registered.aliases)}. Fix: pass one of those."
        ) from None
    return RegisteredVersion(
        name=name,
        version=str(version.version),  # MLflow 3 returns an int here and a str elsewhere
        run_id=version.run_id,
        source_uri=client.get_model_version_download_uri(name, version.version),
        tracking_uri=config.display_tracking_uri,
        aliases=tuple(version.aliases),
    )


def _aliases(aliases: dict[str, int | str]) -> str:
    """{'champion': 2} as "champion -> 2", for error messages."""
    return ", ".join(f"{alias} -> {version}" for alias, version in sorted(aliases.items())) or "none"
