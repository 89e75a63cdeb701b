"""The registry side of the pipeline, as plain functions over the step directories.

KFP hands steps strings and directories; these functions turn them into RegistryConfig/GateConfig calls so
the `@dsl.component` wrappers stay one-liners. On a cluster an empty `tracking_uri` falls back to the
MLFLOW_TRACKING_URI the step gets from a Kubernetes Secret.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from components.contracts import (
    DATASET_STATS_FILE,
    GATE_FILE,
    LOSS_CURVE_FILE,
    MODEL_CARD_FILE,
    TRAIN_CONFIG_FILE,
    TRAIN_LOG_FILE,
    TRAIN_SUMMARY_FILE,
)
from components.contracts import REPORT_METRICS_FILE as EVAL_METRICS_FILE
from components.deploy.errors import DeployError
from components.deploy.outcome import DeployOutcome
from components.errors import ConfigError, InputNotFoundError
from components.evaluation.report_render import Section, insert_sections
from components.registry.champion import EVAL_SPLIT_TAG, champion_metrics
from components.registry.config import RegistryConfig
from components.registry.connection import RegistryError, open_client
from components.registry.gate import GateConfig, GateDecision, GateError, evaluate_gate
from components.registry.lineage import TRITON_PUBLISHED_TAG, TRITON_REPOSITORY_TAG
from components.registry.mlflow_registry import (
    RegisteredVersion,
    StageRun,
    download_model,
    promote,
    register_model,
    resolve,
)
from components.registry.model_card import CardInputs, model_card

# What each stage trains: the part of the model config its child run records as params.
STAGE_NAMES = {1: "stage 1: thinker (text + emotion)", 2: "stage 2: talker + token2wav (speech)"}
STAGE_MODEL_PARTS = {1: ("thinker_config",), 2: ("talker_config", "token2wav_config")}
# Tags each deploy leaves on the version it deployed (record_deployment): the latest deploy's, overwritten by the next.
DEPLOY_OUTCOME_TAG, DEPLOY_TARGET_TAG, DEPLOY_REASON_TAG = (
    "omni.deploy.outcome",
    "omni.deploy.target",
    "omni.deploy.reason",
)
DEPLOY_AT_TAG, DEPLOY_LINEAGE_TAG = "omni.deploy.at", "omni.deploy.lineage_id"


def registry_config(
    tracking_uri: str, artifact_location: str = "", model_name: str = RegistryConfig.model_name
) -> RegistryConfig:
    """RegistryConfig from step parameters, the tracking URI defaulting to $MLFLOW_TRACKING_URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ConfigError(
            "no MLflow tracking URI: pass tracking_uri to the pipeline, or set MLFLOW_TRACKING_URI "
            "(on a cluster, from the mlflow-credentials Secret)"
        )
    return RegistryConfig(tracking_uri=uri, artifact_location=artifact_location, model_name=model_name)


def gate_config(gate_json: str) -> GateConfig:
    """GateConfig with the thresholds in `gate_json` (a JSON object; "{}" keeps the defaults)."""
    try:
        overrides = json.loads(gate_json or "{}")
    except json.JSONDecodeError:
        overrides = None  # refused below, as a JSON list or number is
    if not isinstance(overrides, dict):
        raise GateError(f'gate thresholds {gate_json!r}: give a JSON object, e.g. {{"min_chrf": 30}}')
    known = {f.name for f in dataclasses.fields(GateConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GateError(f"unknown gate thresholds {unknown}; known: {sorted(known)}")
    return GateConfig(**overrides)


def evaluation_document(evaluation_dir: Path) -> dict:
    """The evaluate step's metrics.json: {"summary": {...}, "split": {...}, ...}."""
    path = Path(evaluation_dir) / EVAL_METRICS_FILE
    if not path.is_file():
        raise InputNotFoundError(f"{path} is missing: pass the directory the evaluate step wrote")
    return json.loads(path.read_text())


def evaluation_summary(evaluation_dir: Path) -> dict[str, float]:
    return evaluation_document(evaluation_dir)["summary"]


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, item, out)
    else:
        out[prefix] = value
    return out


def training_stage(training_dir: Path) -> StageRun:
    """A training run directory as an MLflow child run: its stage's params, loss history, summary, plots."""
    training_dir = Path(training_dir)
    train_config = json.loads((training_dir / TRAIN_CONFIG_FILE).read_text())
    summary = json.loads((training_dir / TRAIN_SUMMARY_FILE).read_text())
    stage = int(summary.get("stage", train_config.get("stage", 1)))
    model = train_config.pop("model")
    params = _flatten("", train_config, {})
    for part in STAGE_MODEL_PARTS[stage]:
        params.update(_flatten(part, model.get(part) or {}, {}))
    params = {k: v for k, v in params.items() if not isinstance(v, list)}  # token-id lists are not params
    history = [json.loads(line) for line in (training_dir / TRAIN_LOG_FILE).read_text().splitlines() if line.strip()]
    history = [{k: v for k, v in row.items() if k not in ("epoch", "elapsed_s")} for row in history]
    files = [p for p in (training_dir / LOSS_CURVE_FILE, training_dir / TRAIN_LOG_FILE) if p.is_file()]
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}  # not precision, checks
    if summary.get("trainjob"):  # trained on the cluster: the Kubeflow TrainJob that ran it
        params["trainjob"] = summary["trainjob"]
    if summary.get("export_check"):  # how far the exported model's loss is from the engine's (0 = identical)
        metrics["export_loss_abs_diff"] = float(summary["export_check"]["abs_diff"])
    return StageRun(STAGE_NAMES[stage], params, metrics, history, files)


def register_candidate(
    model_dir: Path,
    training_dirs: list[Path],
    evaluation_dir: Path,
    dataset_dir: Path,
    out_dir: Path,
    *,
    tracking_uri: str,
    artifact_location: str,
    model_name: str,
    gate_json: str,
    lineage_id: str,
) -> dict[str, str]:
    """Decide the gate once and register the trained model as the challenger, with its evaluation, the decision, a
    model card and one child run per training stage (`training_dirs`, in stage order).

    The gate compares the challenger with the current champion on the same evaluation split (components.registry.
    champion). `out_dir` receives GATE_FILE, the model card and the report with the gate's section. `lineage_id`
    (the pipeline run's id) tags the run and the version; a retry with the same id returns the version it already
    registered instead of adding another.
    """
    evaluation_dir, out_dir = Path(evaluation_dir), Path(out_dir)
    config = registry_config(tracking_uri, artifact_location, model_name)
    gate = gate_config(gate_json)
    document = evaluation_document(evaluation_dir)
    summary, split = document["summary"], document.get("split") or {}
    champion = (
        champion_metrics(config, split.get("fingerprint", ""), Path(dataset_dir))
        if gate.compare_with_champion
        else None
    )
    decision = evaluate_gate(summary, gate, champion)
    print("\n".join(decision.lines()))

    report_dir = out_dir / "evaluation"  # the evaluation's files, its report completed with the gate's section
    shutil.copytree(evaluation_dir, report_dir, dirs_exist_ok=True)
    (report_dir / GATE_FILE).write_text(json.dumps(decision.to_dict(), indent=2) + "\n")
    insert_sections(report_dir, gate_sections(decision))

    stages = [training_stage(d) for d in training_dirs]
    final_config = json.loads((Path(training_dirs[-1]) / TRAIN_CONFIG_FILE).read_text())
    params = {k: v for k, v in _flatten("", final_config, {}).items() if not isinstance(v, list)}
    metrics = dict(summary)
    for n, stage in enumerate(stages, start=1):
        metrics.update({f"train_stage{n}_{k}": v for k, v in stage.metrics.items()})
    # Each compared metric's difference from the champion, so runs can be charted against what they replaced.
    metrics.update({f"gate_diff_{c.metric}": c.diff for c in decision.comparisons if c.diff is not None})
    verdict = "passed" if decision.passed else "failed"
    tags = {
        "gate": verdict,
        "gate_reasons": "; ".join(decision.reasons),
        "gate_champion_version": decision.champion_version or "none",
        EVAL_SPLIT_TAG: split.get("fingerprint", ""),
    }
    version = register_model(
        Path(model_dir),
        config=config,
        params=params,
        metrics=metrics,
        tags=tags,
        stages=stages,
        artifacts=sorted(p for p in report_dir.iterdir() if p.is_file()),
        lineage_id=lineage_id,
    )

    card = model_card(
        CardInputs(
            model_name=version.name,
            version=version.version,
            lineage_id=lineage_id,
            run_id=version.run_id,
            dataset=json.loads((Path(dataset_dir) / DATASET_STATS_FILE).read_text()),
            split=split,
            metrics=summary,
            not_computed=document.get("not_computed") or {},
            training=[json.loads((Path(d) / TRAIN_SUMMARY_FILE).read_text()) for d in training_dirs],
            decision=decision,
        )
    )
    attach_model_card(config, version, card, out_dir / MODEL_CARD_FILE)
    return {
        "name": version.name,
        "version": version.version,
        "run_id": version.run_id,
        "source_uri": version.source_uri,
        "tracking_uri": version.tracking_uri,
        "aliases": ",".join(version.aliases),
        "gate": verdict,
        "lineage_id": lineage_id,
        "champion_version": decision.champion_version or "",
    }


def read_gate_decision(registration_dir: Path) -> GateDecision:
    """The decision register_candidate wrote into `registration_dir` (its out_dir), for the step that branches on it."""
    path = Path(registration_dir) / "evaluation" / GATE_FILE
    if not path.is_file():
        raise InputNotFoundError(f"{path} is missing: pass the directory the register step wrote")
    return GateDecision.from_dict(json.loads(path.read_text()))


def gate_sections(decision: GateDecision) -> list[Section]:
    """The gate's decision as report sections: the verdict with its reasons, and the comparison with the champion."""
    against = (
        f"champion v{decision.champion_version} ({decision.champion_source} metrics on this split)"
        if decision.champion_version
        else "no champion yet: the floors alone decided"
    )
    rows = [
        ["decision", "PASSED: the promote step makes it champion" if decision.passed else "FAILED: the champion stays"],
        ["compared with", against],
        *[["reason", r] for r in decision.reasons],
    ]
    sections: list[Section] = [("Gate", ["", ""], rows)]
    if decision.comparisons:

        def cell(value):
            return "-" if value is None else f"{value:.4g}"

        sections.append(
            (
                f"Gate: challenger vs champion v{decision.champion_version} (a difference within the "
                "tolerance is a tie, and a tie promotes)",
                ["metric", "challenger", "champion", "diff", "tolerance", "verdict"],
                [
                    [c.metric, cell(c.challenger), cell(c.champion), cell(c.diff), f"{c.tolerance:.3g}", c.verdict]
                    for c in decision.comparisons
                ],
            )
        )
    return sections


def attach_model_card(config: RegistryConfig, version: RegisteredVersion, card: str, path: Path) -> None:
    """Write `card` to `path` and keep it with the version: an artifact of its run and the version's description."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card, encoding="utf-8")
    client = open_client(config)
    client.log_artifact(version.run_id, str(path))
    client.update_model_version(version.name, version.version, description=card)


def promote_champion(version: str, *, tracking_uri: str, model_name: str) -> str:
    """Move the champion alias to `version`; returns the version now serving as champion."""
    return promote(registry_config(tracking_uri, model_name=model_name), version).version


def serving_lineage(version: str, *, tracking_uri: str, model_name: str, lineage_id: str) -> tuple[dict, str]:
    """What a Triton repository of `version` records about its origin (LINEAGE_FILE), and the version's model card."""
    config = registry_config(tracking_uri, model_name=model_name)
    client = open_client(config)
    found = client.get_model_version(model_name, version)
    lineage = {
        "lineage_id": lineage_id,
        "model_name": model_name,
        "model_version": str(version),
        "mlflow_run_id": found.run_id,
        "tracking_uri": config.display_tracking_uri,
    }
    return lineage, found.description or ""


def record_serving(version: str, *, tracking_uri: str, model_name: str, repository: str, published_uri: str) -> None:
    """Tag the model version with where its Triton repository was built and published ("" = not published)."""
    client = open_client(registry_config(tracking_uri, model_name=model_name))
    client.set_model_version_tag(model_name, version, TRITON_REPOSITORY_TAG, repository)
    if published_uri:
        client.set_model_version_tag(model_name, version, TRITON_PUBLISHED_TAG, published_uri)


def download_version(version: str, dst: Path, *, tracking_uri: str, model_name: str) -> Path:
    return download_model(registry_config(tracking_uri, model_name=model_name), version, Path(dst))


def check_registered(version: str | int, *, tracking_uri: str, model_name: str) -> RegisteredVersion:
    """The registered `version`, or a DeployError naming the versions there are: checked before a deploy changes
    anything."""
    try:
        return resolve(registry_config(tracking_uri, model_name=model_name), str(version))
    except RegistryError as error:
        raise DeployError(f"cannot deploy version {version} of {model_name!r}: {error}") from None


def record_deployment(outcome: DeployOutcome, *, tracking_uri: str, model_name: str) -> bool:
    """Tag the deployed version with how its deploy ended, and move the production alias to it only when the deploy
    was verified (outcome.ok). Sets and returns `outcome.production_alias_moved`."""
    config = registry_config(tracking_uri, model_name=model_name)
    version = check_registered(outcome.version, tracking_uri=tracking_uri, model_name=model_name).version
    client = open_client(config)
    tags = {
        DEPLOY_OUTCOME_TAG: outcome.outcome,
        DEPLOY_TARGET_TAG: outcome.target,
        DEPLOY_REASON_TAG: outcome.reason,  # "" after a deploy that worked: no stale reason from an earlier one
        DEPLOY_AT_TAG: datetime.fromtimestamp(outcome.started_at, UTC).isoformat(timespec="seconds"),
        DEPLOY_LINEAGE_TAG: outcome.lineage_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if outcome.ok:
        promote(config, version, alias=config.production_alias)
    outcome.production_alias_moved = outcome.ok
    return outcome.production_alias_moved
