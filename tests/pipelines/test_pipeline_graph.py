"""The compiled pipeline: every step, the gate, and the cluster settings (GPU, resources, secrets, retries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.cluster.trainjob_config import TrainJobConfig
from components.registry.config import RegistryConfig
from components.synthesis.config import SynthesisConfig
from components.training.config import SpeechTrainConfig, TrainConfig
from pipelines.emotion_omni import ClusterSettings, compile_pipeline
from pipelines.steps import COMPONENT_IMAGE

STEPS = {
    "plan-synthesis",
    "synthesize-part",
    "synthesize",
    "train",
    "speech-units",
    "train-speech",
    "evaluate",
    "register",
    "check-gate",
    "promote",
    "export-triton",
    "serve-smoke-test",
    "deploy",
}


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


def test_both_training_stages_request_gpus_and_memory(compiled):
    for step in ("exec-train", "exec-train-speech"):
        resources = compiled[0]["deploymentSpec"]["executors"][step]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert resources["accelerator"]["resourceCount"] == "2"
        assert resources["resourceMemoryRequest"] == "16Gi"


def test_stage_two_trains_on_stage_one_and_the_units_and_is_what_gets_registered(compiled):
    tasks = compiled[0]["root"]["dag"]["tasks"]
    inputs = tasks["train-speech"]["inputs"]["artifacts"]
    assert inputs["stage1_model"]["taskOutputArtifact"] == {"producerTask": "train", "outputArtifactKey": "model"}
    assert inputs["units"]["taskOutputArtifact"]["producerTask"] == "speech-units"
    for consumer in ("evaluate", "register"):
        model = tasks[consumer]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
        assert model["producerTask"] == "train-speech"


def test_the_gate_is_decided_once_by_register_and_promote_branches_on_it(compiled):
    tasks = compiled[0]["root"]["dag"]["tasks"]
    gate = next(t for t in tasks.values() if t["taskInfo"]["name"] == "gate-passed")
    assert gate["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--check-gate-Output'] == true"
    # check-gate reads the decision register wrote (its registration artifact); it has no evaluation to re-decide.
    check = tasks["check-gate"]["inputs"]
    assert set(check["artifacts"]) == {"registration"} and "gate_json" not in check["parameters"]
    inner = compiled[0]["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    assert {t["taskInfo"]["name"] for t in inner.values()} == {"promote", "deploy-target-set"}
    # register compares with the champion on the same split: it gets the dataset to evaluate the champion again.
    assert tasks["register"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]["producerTask"] == "synthesize"


def _deploy_branch(spec: dict) -> dict:
    """The task group that holds the deploy step: inside the gate's branch, the deploy-target-set condition."""
    gate = next(t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == "gate-passed")
    inner = spec["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    return next(t for t in inner.values() if t["taskInfo"]["name"] == "deploy-target-set")


def test_deploy_runs_only_when_the_gate_passed_and_a_target_is_set_after_the_smoke_test(compiled):
    spec, platform = compiled
    tasks = spec["root"]["dag"]["tasks"]
    branch = _deploy_branch(spec)
    assert branch["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--deploy_target'] != ''"
    gate = next(t for t in tasks.values() if t["taskInfo"]["name"] == "gate-passed")
    assert "serve-smoke-test" in gate["dependentTasks"] and "promote" in branch["dependentTasks"]
    deploy = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]["deploy"]
    assert deploy["inputs"]["artifacts"]["model_repository"]["componentInputArtifact"].endswith(
        "export-triton-model_repository"
    )
    assert "retryPolicy" not in deploy  # a failed deploy restored the old version; another try is a new decision
    assert platform["exec-deploy"]["secretAsEnv"][0]["secretName"] == "mlflow-credentials"
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy_target"]["defaultValue"] == ""


def test_every_step_gets_the_runs_lineage_id_and_the_pushgateway(compiled):
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    gate = next(t for t in tasks.values() if t["taskInfo"]["name"] == "gate-passed")
    loop = next(t for t in tasks.values() if t["taskInfo"]["name"].startswith("for-loop"))
    nested = {
        **spec["components"][gate["componentRef"]["name"]]["dag"]["tasks"],
        **spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"],
        **spec["components"][_deploy_branch(spec)["componentRef"]["name"]]["dag"]["tasks"],
    }
    for name in STEPS:
        task = tasks.get(name) or nested[name]
        parameters = task["inputs"]["parameters"]
        lineage = parameters.get("lineage_id") or parameters["run_id"]  # the train steps call it run_id
        assert lineage == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}, name
        env = spec["deploymentSpec"]["executors"][task["componentRef"]["name"].replace("comp-", "exec-")]
        assert {"name": "OMNI_PUSHGATEWAY_URL", "value": ClusterSettings.pushgateway_url} in env["container"]["env"]


def test_registry_steps_get_mlflow_secret_as_env_and_retries(compiled):
    spec, platform = compiled
    for step in ("register", "promote", "export-triton"):
        secrets = platform[f"exec-{step}"]["secretAsEnv"][0]
        assert secrets["secretName"] == "mlflow-credentials"
        assert {m["envVar"] for m in secrets["keyToEnv"]} >= {"MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY"}
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["register"]["retryPolicy"]["maxRetryCount"] == 2


def test_defaults_are_the_config_dataclasses(compiled):
    """The compiled run, `omni demo` (which passes only the flags given) and each step alone start from the same
    values: the pipeline's defaults are the config dataclasses' fields."""
    params = {k: v.get("defaultValue") for k, v in compiled[0]["root"]["inputDefinitions"]["parameters"].items()}
    assert params["n"] == SynthesisConfig.n and params["test_fraction"] == SynthesisConfig.test_fraction
    assert params["text_backend"] == SynthesisConfig.text_backend
    assert params["epochs"] == TrainConfig.epochs and params["speech_epochs"] == SpeechTrainConfig.epochs
    assert params["nproc"] == TrainConfig.nproc and params["max_steps"] == TrainConfig.max_steps
    assert params["speech_max_steps"] == SpeechTrainConfig.max_steps
    assert params["model_name"] == RegistryConfig.model_name
    assert params["trainjob_num_nodes"] == TrainJobConfig.num_nodes
    assert params["trainjob_gpus_per_node"] == TrainJobConfig.gpus_per_node
    # One seed drives synthesis, speech units and both training stages, so the two configs must agree on it.
    assert params["seed"] == SynthesisConfig.seed == TrainConfig.seed


def test_synthesis_fans_out_over_parts_and_the_merge_collects_them(compiled):
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    loop = next(t for t in tasks.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-synthesis-Output"
    assert loop["iteratorPolicy"]["parallelismLimit"] == ClusterSettings().synthesis_parallelism
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"synthesize-part"} and inner["synthesize-part"]["retryPolicy"]["maxRetryCount"] == 2
    collected = tasks["synthesize"]["inputs"]["artifacts"]["parts"]["taskOutputArtifact"]
    assert collected["producerTask"] == loop["taskInfo"]["name"]
    assert spec["root"]["inputDefinitions"]["parameters"]["synthesis_parts"]["defaultValue"] == 1
    part = spec["deploymentSpec"]["executors"]["exec-synthesize-part"]["container"]["resources"]
    assert part["resourceCpuRequest"] == ClusterSettings().synthesis_cpu


def test_llm_secret_reaches_only_the_synthesis_steps(tmp_path):
    path = compile_pipeline(str(tmp_path / "p.yaml"), ClusterSettings(llm_secret="llm-credentials"))
    executors = list(yaml.safe_load_all(Path(path).read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"
    ]
    with_llm = [
        name
        for name, spec in executors.items()
        if any(s["secretName"] == "llm-credentials" for s in spec.get("secretAsEnv", []))
    ]
    assert sorted(with_llm) == ["exec-plan-synthesis", "exec-synthesize", "exec-synthesize-part"]


def test_no_pushgateway_sets_no_url(tmp_path):
    """kfp.local runs with pushgateway_url="": a laptop has no cluster Pushgateway to warn about at every step."""
    path = compile_pipeline(str(tmp_path / "p.yaml"), ClusterSettings(pushgateway_url=""))
    executors = next(yaml.safe_load_all(Path(path).read_text()))["deploymentSpec"]["executors"]
    assert not any("OMNI_PUSHGATEWAY_URL" in json.dumps(e["container"].get("env", [])) for e in executors.values())


def test_judge_secret_reaches_the_steps_that_evaluate(tmp_path):
    path = compile_pipeline(str(tmp_path / "p.yaml"), ClusterSettings(judge_secret="judge-credentials"))
    executors = list(yaml.safe_load_all(Path(path).read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"
    ]
    with_judge = {
        name: spec
        for name, spec in executors.items()
        if any(s["secretName"] == "judge-credentials" for s in spec.get("secretAsEnv", []))
    }
    assert sorted(with_judge) == ["exec-evaluate", "exec-register"]  # register may evaluate the champion again
    keys = next(s for s in with_judge["exec-evaluate"]["secretAsEnv"] if s["secretName"] == "judge-credentials")
    assert {k["envVar"] for k in keys["keyToEnv"]} == {"OMNI_JUDGE_BASE_URL", "OMNI_JUDGE_MODEL", "OMNI_JUDGE_API_KEY"}


def test_every_step_requests_cpu_and_memory(compiled):
    for name, executor in compiled[0]["deploymentSpec"]["executors"].items():
        resources = executor["container"].get("resources", {})
        assert {"resourceCpuRequest", "resourceMemoryRequest"} <= set(resources), name


def test_train_backend_parameters_default_to_local(compiled):
    spec, platform = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["train_backend"]["defaultValue"] == "local"
    assert params["trainjob_num_nodes"]["defaultValue"] == 1 and params["trainjob_gpus_per_node"]["defaultValue"] == 1
    inputs = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    assert inputs["backend"] == {"componentInputParameter": "train_backend"}
    assert inputs["num_nodes"] == {"componentInputParameter": "trainjob_num_nodes"}
    # No shared PVC unless one is configured; the GPU step tolerates the usual GPU taint.
    assert "pvcMount" not in platform["exec-train"]
    assert platform["exec-train"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_trainjob_cluster_settings_reach_the_train_step(tmp_path):
    """A TrainJob-only cluster: the launcher pod gets the PVC and no GPU; its TrainJobConfig is valid."""
    path = tmp_path / "pipeline.yaml"
    compile_pipeline(
        str(path),
        ClusterSettings(
            train_gpus=0, shared_pvc="omni-shared", gpu_node_selector={"pool": "a100"}, trainjob_memory="64Gi"
        ),
    )
    spec, platform = yaml.safe_load_all(path.read_text())
    train = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert train["pvcMount"] == [
        {
            "constant": "omni-shared",
            "mountPath": "/mnt/omni-shared",
            "pvcNameParameter": {"runtimeValue": {"constant": "omni-shared"}},
        }
    ]
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert "nodeSelector" not in train  # the launcher is not a GPU pod; the TrainJob nodes are
    constant = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["trainjob_json"]["runtimeValue"]
    job = TrainJobConfig.from_dict({**json.loads(constant["constant"]), "num_nodes": 2, "gpus_per_node": 8})
    job.validate()
    cluster = job.cluster
    assert cluster.shared_pvc == "omni-shared" and cluster.shared_mount_path == "/mnt/omni-shared"
    assert job.image == COMPONENT_IMAGE
    assert cluster.trainjob_runtime == "torch-distributed-deepspeed" and cluster.trainjob_memory == "64Gi"
    assert cluster.gpu_node_selector == {"pool": "a100"} and cluster.gpu_tolerations[0]["key"] == "nvidia.com/gpu"


def test_launcher_rbac_covers_what_the_launcher_calls():
    role = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "pipelines" / "rbac" / "trainjob-launcher.yaml").read_text()
    )
    assert role["kind"] == "Role" and role["apiVersion"] == "rbac.authorization.k8s.io/v1"
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("trainer.kubeflow.org", "trainjobs", "create"),
        ("trainer.kubeflow.org", "trainjobs", "get"),
        ("trainer.kubeflow.org", "trainjobs", "delete"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
    }


def test_train_steps_retry_and_resume_from_a_run_scoped_checkpoint_mirror(compiled):
    """A retried train step (preempted node, OOM kill) resumes: both steps retry, get the S3 keys for an s3://
    checkpoint_root, and receive the KFP run's id so each run's checkpoints live under their own prefix."""
    spec, platform = compiled
    tasks = spec["root"]["dag"]["tasks"]
    for task in ("train", "train-speech"):
        assert tasks[task]["retryPolicy"]["maxRetryCount"] == ClusterSettings().train_retries
        params = tasks[task]["inputs"]["parameters"]
        assert params["checkpoint_root"]["componentInputParameter"] == "checkpoint_root"
        assert params["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
        assert platform[f"exec-{task}"]["secretAsEnv"][0]["secretName"] == "mlflow-credentials"
    assert spec["root"]["inputDefinitions"]["parameters"]["checkpoint_root"]["defaultValue"] == ""
