"""The registry side of the pipeline, as plain functions over the step directories.

KFP hands steps strings and directories; these functions turn them into RegistryConfig/GateConfig calls so
the `@dsl.component` wrappers stay one-liners. On a cluster an empty `tracking_uri` falls back to the
MLFLOW_TRACKING_URI the step gets from a Kubernetes Secret.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from components.contracts import LOSS_CURVE_FILE, TRAIN_CONFIG_FILE, TRAIN_LOG_FILE, TRAIN_SUMMARY_FILE
from components.contracts import REPORT_METRICS_FILE as EVAL_METRICS_FILE
from components.registry.config import RegistryConfig
from components.registry.gate import GateConfig, GateDecision, GateError, evaluate_gate
from components.registry.mlflow_registry import StageRun, download_model, promote, register_model
# What each stage trains: the part of the model config its child run records as params.
STAGE_NAMES = {1: "stage 1: thinker (text + emotion)", 2: "stage 2: talker + token2wav (speech)"}
STAGE_MODEL_PARTS = {1: ("thinker_config",), 2: ("talker_config", "token2wav_config")}


def registry_config(tracking_uri: str, artifact_location: str = "", model_name: str = "emotion-omni") -> RegistryConfig:
    """RegistryConfig from step parameters, the tracking URI defaulting to $MLFLOW_TRACKING_URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ValueError("no MLflow tracking URI: pass tracking_uri to the pipeline, or set MLFLOW_TRACKING_URI "
                         "(on a cluster, from the mlflow-credentials Secret)")
    return RegistryConfig(tracking_uri=uri, artifact_location=artifact_location, model_name=model_name)


def gate_config(gate_json: str) -> GateConfig:
    """GateConfig with the thresholds in `gate_json` (a JSON object; "{}" keeps the defaults)."""
    overrides = json.loads(gate_json or "{}")
    known = {f.name for f in dataclasses.fields(GateConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GateError(f"unknown gate thresholds {unknown}; known: {sorted(known)}")
    return GateConfig(**overrides)


def evaluation_summary(evaluation_dir: Path) -> dict[str, float]:
    path = Path(evaluation_dir) / EVAL_METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: pass the directory the evaluate step wrote")
    return json.loads(path.read_text())["summary"]


def gate_decision(evaluation_dir: Path, gate_json: str) -> GateDecision:
    return evaluate_gate(evaluation_summary(evaluation_dir), gate_config(gate_json))


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
    if summary.get("export_check"):  # how far the exported model's loss is from the engine's (0 = identical)
        metrics["export_loss_abs_diff"] = float(summary["export_check"]["abs_diff"])
    return StageRun(STAGE_NAMES[stage], params, metrics, history, files)


def register_candidate(model_dir: Path, training_dirs: list[Path], evaluation_dir: Path, *, tracking_uri: str,
                       artifact_location: str, model_name: str, gate_json: str) -> dict[str, str]:
    """Register the trained model as the challenger with its evaluation, gate verdict and one child run per
    training stage (`training_dirs`, in stage order)."""
    evaluation_dir = Path(evaluation_dir)
    config = registry_config(tracking_uri, artifact_location, model_name)
    stages = [training_stage(d) for d in training_dirs]
    final_config = json.loads((Path(training_dirs[-1]) / TRAIN_CONFIG_FILE).read_text())
    params = {k: v for k, v in _flatten("", final_config, {}).items() if not isinstance(v, list)}
    summary = evaluation_summary(evaluation_dir)
    metrics = dict(summary)
    for n, stage in enumerate(stages, start=1):
        metrics.update({f"train_stage{n}_{k}": v for k, v in stage.metrics.items()})
    decision = gate_decision(evaluation_dir, gate_json)
    artifacts = sorted(p for p in evaluation_dir.iterdir() if p.is_file())
    version = register_model(
        Path(model_dir), config=config, params=params, metrics=metrics, artifacts=artifacts, stages=stages,
        tags={"gate": "passed" if decision.passed else "failed", "gate_reasons": "; ".join(decision.reasons)})
    return {"name": version.name, "version": version.version, "run_id": version.run_id,
            "source_uri": version.source_uri, "tracking_uri": version.tracking_uri,
            "aliases": ",".join(version.aliases), "gate": "passed" if decision.passed else "failed"}


def promote_champion(version: str, *, tracking_uri: str, model_name: str) -> str:
    """Move the champion alias to `version`; returns the version now serving as champion."""
    return promote(registry_config(tracking_uri, model_name=model_name), version).version


def download_version(version: str, dst: Path, *, tracking_uri: str, model_name: str) -> Path:
    return download_model(registry_config(tracking_uri, model_name=model_name), version, Path(dst))
