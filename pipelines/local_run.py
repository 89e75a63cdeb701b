"""Run the whole pipeline on this machine with kfp.local (SubprocessRunner, no containers, no cluster).

Each step runs as a subprocess of the current interpreter, so the project must be installed in it
(`pip install -e .`). Outputs land under DATA_DIR/kfp/<run>/<task>/...; MLflow uses DATA_DIR/mlflow.
"""

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.registry.config import RegistryConfig
from pipelines.emotion_omni import ClusterSettings, build_pipeline
from pipelines.train_parameters import check_pipeline_arguments


@dataclass
class StepResult:
    task: str
    parameters: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]  # output name -> {"uri": ..., "metadata": {...}}


@dataclass
class LocalRun:
    run_dir: Path
    wall_seconds: float
    steps: dict[str, StepResult] = field(default_factory=dict)


def _collect(run_dir: Path) -> dict[str, StepResult]:
    """Read every task's executor_output.json (KFP's record of its outputs and their metadata). A task inside a
    ParallelFor runs once per item, under for-loop-<k>-iteration-<i>/: it is named "<task>[<i>]"."""
    results = {}
    loops = sorted(run_dir.glob("for-loop-*-iteration-*/*/executor_output.json"))
    for output_file in sorted(run_dir.glob("*/executor_output.json")) + loops:
        data = json.loads(output_file.read_text())
        artifacts = {
            name: {"uri": spec["artifacts"][0]["uri"], "metadata": spec["artifacts"][0].get("metadata", {})}
            for name, spec in data.get("artifacts", {}).items()
        }
        task = output_file.parent.name
        if output_file.parent.parent != run_dir:
            task += f"[{output_file.parent.parent.name.rsplit('-', 1)[1]}]"
        results[task] = StepResult(task, data.get("parameterValues", {}), artifacts)
    return results


def run_local(data_dir: Path, **arguments: Any) -> LocalRun:
    """Run the pipeline with `arguments` (pipeline parameters) and return what each step produced.

    MLflow defaults to sqlite + a local artifact root under `data_dir` unless tracking_uri is given. Parameters left
    out keep the pipeline's defaults (the config dataclasses'); a train config JSON the train step would refuse is
    refused here, before synthesis spends minutes.
    """
    from kfp import local

    check_pipeline_arguments(arguments)
    data_dir = Path(data_dir).resolve()
    root = data_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    if not arguments.get("tracking_uri"):
        registry = RegistryConfig.local(data_dir)
        arguments.update(tracking_uri=registry.tracking_uri, artifact_location=registry.artifact_location or "")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    before = set(root.iterdir())
    start = time.time()
    with warnings.catch_warnings():
        # Locally the steps run in this interpreter, where the package is installed, not in the component
        # image; and cluster-only settings (resources, GPUs, secrets) are ignored by design.
        warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
        warnings.filterwarnings("ignore", message="Task .* have no effect in the current local runner")
        # No cluster Pushgateway here: steps push only when OMNI_PUSHGATEWAY_URL is in this environment.
        build_pipeline(ClusterSettings(pushgateway_url=""))(**arguments)
    wall = time.time() - start
    new = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"kfp.local finished but wrote no run directory under {root}")
    return LocalRun(run_dir=new[-1], wall_seconds=round(wall, 2), steps=_collect(new[-1]))
