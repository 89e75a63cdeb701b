"""The main job's closing summary: where everything is, the metrics, and each step's wall time."""
import json
from pathlib import Path

from components.contracts import (
    METRIC_CHRF, METRIC_LATENCY_P50_MS, METRIC_LATENCY_P95_MS, METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_ACCURACY, METRIC_USER_EMOTION_MACRO_F1,
)
from pipelines.local_run import LocalRun

# KFP task name -> (label in the summary, output whose metadata carries wall_seconds)
STEP_OUTPUTS = {
    "synthesize": ("1 synthesize", "dataset"),
    "train": ("2 train (DeepSpeed)", "model"),
    "evaluate": ("3 evaluate", "evaluation"),
    "register": ("4 register (MLflow)", "registration"),
    "export-triton": ("5a export (Triton repo)", "model_repository"),
    "serve-smoke-test": ("5b serve (tritonserver)", "reply"),
}
METRIC_KEYS = (METRIC_USER_EMOTION_ACCURACY, METRIC_USER_EMOTION_MACRO_F1, METRIC_RESPONSE_EMOTION_ACCURACY,
               METRIC_CHRF, METRIC_LATENCY_P50_MS, METRIC_LATENCY_P95_MS)


def build_summary(run: LocalRun, data_dir: Path) -> dict:
    steps = run.steps
    evaluation = steps["evaluate"].artifacts["evaluation"]
    registration = steps["register"].artifacts["registration"]["metadata"]
    repository = steps["export-triton"].artifacts["model_repository"]
    reply = json.loads(steps["serve-smoke-test"].parameters["Output"])
    gate_passed = bool(steps["check-gate"].parameters["Output"])
    return {
        "data_dir": str(data_dir),
        "run_dir": str(run.run_dir),
        "dataset": steps["synthesize"].artifacts["dataset"]["uri"],
        "model": steps["train"].artifacts["model"]["uri"],
        "training_run": steps["train"].artifacts["training"]["uri"],
        "report": str(Path(evaluation["uri"]) / "report.html"),
        "mlflow": {
            "tracking_uri": registration["tracking_uri"], "model_name": registration["name"],
            "version": registration["version"], "run_id": registration["run_id"],
            "aliases": ["challenger"] + (["champion"] if gate_passed else []),
        },
        "gate_passed": gate_passed,
        "triton": {"model_repository": repository["uri"],
                   "published_uri": repository["metadata"].get("published_uri", ""),
                   "published_instance_kind": repository["metadata"].get("published_instance_kind", ""),
                   "endpoint_used": reply["endpoint"], "reply": reply},
        "metrics": {k: evaluation["metadata"][k] for k in METRIC_KEYS},
        "train": {k: steps["train"].artifacts["model"]["metadata"][k]
                  for k in ("steps", "samples_per_second", "parameters", "world_size", "zero_stage")},
        "step_seconds": {label: steps[task].artifacts[output]["metadata"].get("wall_seconds")
                         for task, (label, output) in STEP_OUTPUTS.items() if task in steps},
        "pipeline_seconds": run.wall_seconds,
    }


def format_summary(summary: dict) -> str:
    m, r, t = summary["mlflow"], summary["triton"]["reply"], summary["train"]
    lines = [
        "", "Emotion Omni: pipeline finished", "=" * 64,
        f"data      {summary['dataset']}",
        f"model     {summary['model']}  ({t['parameters']:,} params, {t['steps']} steps, "
        f"ZeRO-{t['zero_stage']} x {t['world_size']} ranks, {t['samples_per_second']} samples/s)",
        f"report    {summary['report']}",
        f"mlflow    {m['tracking_uri']}  model '{m['model_name']}' v{m['version']} "
        f"aliases {m['aliases']}  run {m['run_id']}",
        f"gate      {'PASSED: champion moved' if summary['gate_passed'] else 'FAILED: champion unchanged'}",
        f"triton    repository {summary['triton']['model_repository']}"
        + (f"\n          published to {summary['triton']['published_uri']}"
           f" ({summary['triton']['published_instance_kind']} instances)" if summary['triton']['published_uri'] else ""),
        f"          answered at {summary['triton']['endpoint_used']} in {r['latency_s']} s "
        "(stopped after the smoke test; `omni serve --model-repository <repository>` serves it again)",
        f"          user said   \"{r['user_text']}\" ({r['user_emotion_reference']}; heard: {r['user_emotion']})",
        f"          model said  \"{r['response_text']}\" ({r['response_emotion']}) -> {r['reply_wav']}",
        "", "metrics (held-out test split)",
    ]
    lines += [f"  {k:28s} {v:.4g}" for k, v in summary["metrics"].items()]
    lines += ["", "wall time per step"]
    lines += [f"  {k:28s} {v:7.1f} s" for k, v in summary["step_seconds"].items() if v is not None]
    lines += [f"  {'whole pipeline (kfp.local)':28s} {summary['pipeline_seconds']:7.1f} s", ""]
    return "\n".join(lines)
