"""The main job's closing summary: where everything is, the metrics, and each step's wall time."""

import dataclasses
import json
from pathlib import Path

from components.contracts import (
    GATE_FILE,
    METRIC_CHRF,
    METRIC_DNSMOS_OVRL,
    METRIC_EMPATHY_SCORE,
    METRIC_LATENCY_P50_MS,
    METRIC_LATENCY_P95_MS,
    METRIC_MCD_DB,
    METRIC_PITCH_ORDER_SPEARMAN,
    METRIC_RELEVANCE_REFERENCE,
    METRIC_RELEVANCE_USER,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_RESYNTHESIS_STOI,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_SPEECH_JUDGE_ACCURACY,
    METRIC_SPEECH_RTF,
    METRIC_UNSEEN_VOICE_CHRF,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_GAP,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
    METRIC_UTMOS,
    MODEL_CARD_FILE,
    REPORT_HTML_FILE,
    REPORT_METRICS_FILE,
)
from components.deploy.outcome import DeployOutcome
from components.evaluation.generalization import GENERALIZATION_TARGETS
from components.evaluation.speech_eval import SPEECH_TARGETS
from components.evaluation.targets import TargetCheck, check_targets
from components.registry.config import RegistryConfig
from components.registry.gate import GateDecision
from pipelines.local_run import LocalRun

# KFP task name -> (label in the summary, output whose metadata carries wall_seconds)
STEP_OUTPUTS = {
    "synthesize-part": ("1a synthesize parts (slowest part)", "shards"),
    "synthesize": ("1b synthesize: merge, filter, card", "dataset"),
    "train": ("2a train stage 1 (thinker)", "model"),
    "speech-units": ("2b speech units (k-means)", "units"),
    "train-speech": ("2c train stage 2 (talker)", "model"),
    "evaluate": ("3 evaluate", "evaluation"),
    "register": ("4 gate + register (MLflow)", "registration"),
    "export-triton": ("5a export (Triton repo)", "model_repository"),
    "serve-smoke-test": ("5b serve (tritonserver)", "reply"),
    "deploy": ("6 deploy (verified rollout)", "deployment"),
}
METRIC_KEYS = (
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_GAP,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_CHRF,
    METRIC_UNSEEN_VOICE_CHRF,
    METRIC_RELEVANCE_USER,
    METRIC_RELEVANCE_REFERENCE,
    METRIC_EMPATHY_SCORE,
    METRIC_LATENCY_P50_MS,
    METRIC_LATENCY_P95_MS,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_SPEECH_JUDGE_ACCURACY,
    METRIC_RESYNTHESIS_STOI,
    METRIC_PITCH_ORDER_SPEARMAN,
    METRIC_MCD_DB,
    METRIC_DNSMOS_OVRL,
    METRIC_UTMOS,
    METRIC_SPEECH_RTF,
)
TRAIN_KEYS = ("stage", "steps", "samples_per_second", "parameters", "trainable_parameters", "world_size", "zero_stage")


def build_summary(run: LocalRun, data_dir: Path) -> dict:
    steps = run.steps
    evaluation = steps["evaluate"].artifacts["evaluation"]
    registered = steps["register"].artifacts["registration"]
    registration = registered["metadata"]
    repository = steps["export-triton"].artifacts["model_repository"]
    reply = json.loads(steps["serve-smoke-test"].parameters["Output"])
    gate_passed = bool(steps["check-gate"].parameters["Output"])
    deployment = _deployment(steps)
    evaluation_copy = Path(registered["uri"]) / "evaluation"  # the report, completed with the gate's section
    return {
        "data_dir": str(data_dir),
        "run_dir": str(run.run_dir),
        "dataset": steps["synthesize"].artifacts["dataset"]["uri"],
        "model": steps["train-speech"].artifacts["model"]["uri"],
        "stage1_model": steps["train"].artifacts["model"]["uri"],
        "training_runs": [steps[t].artifacts["training"]["uri"] for t in ("train", "train-speech")],
        "speech_units": steps["speech-units"].artifacts["units"]["uri"],
        "report": str(evaluation_copy / REPORT_HTML_FILE),
        "model_card": str(Path(registered["uri"]) / MODEL_CARD_FILE),
        "lineage_id": registration["lineage_id"],
        "gate": json.loads((evaluation_copy / GATE_FILE).read_text()),
        "not_computed": _not_computed(Path(evaluation["uri"])),
        "mlflow": {
            "tracking_uri": registration["tracking_uri"],
            "model_name": registration["name"],
            "version": registration["version"],
            "run_id": registration["run_id"],
            "aliases": [RegistryConfig.challenger_alias]
            + ([RegistryConfig.champion_alias] if gate_passed else [])
            + ([RegistryConfig.production_alias] if deployment and deployment["production_alias_moved"] else []),
        },
        "gate_passed": gate_passed,
        "triton": {
            "model_repository": repository["uri"],
            "published_uri": repository["metadata"].get("published_uri", ""),
            "published_instance_kind": repository["metadata"].get("published_instance_kind", ""),
            "endpoint_used": reply["endpoint"],
            "reply": reply,
        },
        # A metric the evaluation could not compute is absent from its metadata: None here, "not computed" below.
        "metrics": {k: evaluation["metadata"].get(k) for k in METRIC_KEYS},
        "targets": [
            dataclasses.asdict(t)
            for t in check_targets(evaluation["metadata"], {**SPEECH_TARGETS, **GENERALIZATION_TARGETS})
        ],
        "train": [
            {k: steps[t].artifacts["model"]["metadata"][k] for k in TRAIN_KEYS} for t in ("train", "train-speech")
        ],
        "step_seconds": {
            label: max(
                (
                    steps[name].artifacts[output]["metadata"].get("wall_seconds") or 0
                    for name in steps
                    if name == task or name.startswith(f"{task}[")
                ),
                default=None,
            )
            for task, (label, output) in STEP_OUTPUTS.items()
        },
        "deployment": deployment,
        "pipeline_seconds": run.wall_seconds,
    }


def _deployment(steps: dict) -> dict | None:
    """The deploy step's DeployOutcome, or None when it did not run (the gate failed, or no deploy_target)."""
    if "deploy" not in steps:
        return None
    return json.loads((Path(steps["deploy"].artifacts["deployment"]["uri"]) / "deployment.json").read_text())


def _not_computed(evaluation_dir: Path) -> dict[str, str]:
    """metric -> why the evaluation could not compute it (its metrics.json says)."""
    return json.loads((evaluation_dir / REPORT_METRICS_FILE).read_text()).get("not_computed") or {}


def format_summary(summary: dict) -> str:
    m, served, r = summary["mlflow"], summary["triton"], summary["triton"]["reply"]
    lines = [
        "",
        "Emotion Omni: pipeline finished",
        "=" * 64,
        f"data      {summary['dataset']}",
        f"model     {summary['model']}  (thinker + talker + token2wav)",
    ]
    for t in summary["train"]:
        lines.append(
            f"  stage {t['stage']}  {t['trainable_parameters']:,} of {t['parameters']:,} params trained, "
            f"{t['steps']} steps, ZeRO-{t['zero_stage']} x {t['world_size']} ranks, "
            f"{t['samples_per_second']} samples/s"
        )
    lines += [
        f"report    {summary['report']}",
        f"mlflow    {m['tracking_uri']}  model '{m['model_name']}' v{m['version']} "
        f"aliases {m['aliases']}  run {m['run_id']}",
        f"lineage   {summary['lineage_id']}  (`omni lineage {summary['lineage_id']}` walks it; model card "
        f"{summary['model_card']})",
        *_gate_lines(summary["gate"]),
        f"triton    repository {served['model_repository']}"
        + (
            f"\n          published to {served['published_uri']} ({served['published_instance_kind']} instances)"
            if served["published_uri"]
            else ""
        ),
        f"          answered at {summary['triton']['endpoint_used']} by v{r['model_version']} "
        f"(lineage {r['lineage_id'] or 'not recorded'}) in {r['latency_s']} s "
        "(a tritonserver started for the smoke test, then stopped)",
        f'          user said   "{r["user_text"]}" ({r["user_emotion_reference"]}; heard: {r["user_emotion"]})',
        f'          model said  "{r["response_text"]}" ({r["response_emotion"]})',
        f"          its voice   {r['reply_wav']} ({r['reply_audio_s']} s, the talker's units through the token2wav)"
        if not r["speech_note"]
        else f"          its voice   none: {r['speech_note']}",
        f"          DNSMOS of the served reply: {r['served_dnsmos_ovrl']} ({r['served_dnsmos_note']})",
        *_deployment_lines(summary["deployment"]),
        "",
        "metrics (held-out test split; unseen_voice_*: the split spoken by voices no training turn used)",
    ]
    lines += [
        f"  {k:36s} "
        + (format(v, ".4g") if v is not None else f"not computed: {summary['not_computed'].get(k, 'see the report')}")
        for k, v in summary["metrics"].items()
    ]
    lines += ["", "speech targets"]
    lines += [f"  {TargetCheck(**t).line()}" for t in summary["targets"]]
    lines += ["", "wall time per step"]
    lines += [f"  {k:36s} {v:7.1f} s" for k, v in summary["step_seconds"].items() if v is not None]
    lines += [f"  {'whole pipeline (kfp.local)':36s} {summary['pipeline_seconds']:7.1f} s", ""]
    return "\n".join(lines)


def _deployment_lines(deployment: dict | None) -> list[str]:
    if deployment is None:
        return ["deploy    not run (the gate did not pass, or no deploy_target was set)"]
    outcome = DeployOutcome.from_dict(deployment)
    first, *rest = outcome.lines()
    lines = [f"deploy    {first.removeprefix('deploy ')}"] + [f"        {line}" for line in rest]
    if outcome.target.startswith("local "):  # "local <repository> at <url>" (serving/deploy_local.py)
        repository = outcome.target.removeprefix("local ").rsplit(" at ", 1)[0]
        lines.append(f"          serve it: TRITON_ADMIN_KEY=<a key> omni serve --model-repository {repository}")
    return lines


def _gate_lines(gate: dict) -> list[str]:
    """The gate's decision (GATE_FILE) as GateDecision.lines() puts it, aligned with the summary's columns."""
    first, *rest = GateDecision.from_dict(gate).lines()
    return [first.replace("gate ", "gate      ", 1)] + [f"        {line}" for line in rest]
