"""The compiled pipeline: every step, the gate, and the cluster settings (GPU, resources, secrets, retries)."""
from __future__ import annotations

import pytest
import yaml

from pipelines.emotion_omni import ClusterSettings, compile_pipeline
from pipelines.steps import COMPONENT_IMAGE

STEPS = {"synthesize", "train", "evaluate", "register", "check-gate", "promote", "export-triton", "serve-smoke-test"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
    compile_pipeline(str(path), ClusterSettings(train_gpus=2))
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_step_runs_the_component_image(compiled):
    spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert {name.removeprefix("exec-") for name in executors} == STEPS
    assert {e["container"]["image"] for e in executors.values()} == {COMPONENT_IMAGE}
    # The image carries kfp: no step pip-installs anything at start-up.
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())


def test_training_requests_gpus_and_memory(compiled):
    resources = compiled[0]["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    assert resources["resourceMemoryRequest"] == "16Gi"


def test_gate_branches_on_check_gate(compiled):
    tasks = compiled[0]["root"]["dag"]["tasks"]
    gate = next(t for t in tasks.values() if t["taskInfo"]["name"] == "gate-passed")
    assert gate["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--check-gate-Output'] == true"
    inner = compiled[0]["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"promote"}


def test_registry_steps_get_mlflow_secret_as_env_and_retries(compiled):
    spec, platform = compiled
    for step in ("register", "promote", "export-triton"):
        secrets = platform[f"exec-{step}"]["secretAsEnv"][0]
        assert secrets["secretName"] == "mlflow-credentials"
        assert {m["envVar"] for m in secrets["keyToEnv"]} >= {"MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY"}
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["register"]["retryPolicy"]["maxRetryCount"] == 2


def test_defaults_match_the_local_demo(compiled):
    params = compiled[0]["root"]["inputDefinitions"]["parameters"]
    assert params["epochs"]["defaultValue"] == 30 and params["nproc"]["defaultValue"] == 2
    assert params["n"]["defaultValue"] == 300
