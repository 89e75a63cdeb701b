"""The pipeline's steps as KFP v2 lightweight components: thin wrappers that adapt artifacts and call
`components`. Imports live inside each function because KFP ships only the function body to the pod.

Every step records `wall_seconds` on its main output's metadata so runs can be compared step by step, and pushes
its duration and outcome (evaluate its metrics, register the gate decision) to a Pushgateway when
OMNI_PUSHGATEWAY_URL is set (`components.pipeline_metrics`), labelled with the run's lineage ID.
Steps that run torch in their own process size its thread pool by the pod's CPU quota (`components.cpu`); the
train steps' ranks and the smoke test's tritonserver get the same through their launchers.
"""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

# The component image built by infra/Dockerfile.components: the package and its pinned stack installed.
COMPONENT_IMAGE = "ghcr.io/empathy-omni/omni-components:0.1.0"
# The image already carries kfp, so steps skip the per-step `pip install kfp` KFP would otherwise prepend.


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_synthesis(
    n: int, seed: int, test_fraction: float, text_backend: str, parts: int, lineage_id: str
) -> List[int]:
    """Step 1a: check what synthesis needs (TTS engines, the LLM endpoint for text_backend "llm") before any part
    starts, and return the parts to fan out over (at most `parts`; fewer when the build has fewer shards)."""
    from components.pipeline_metrics import step_metrics
    from components.synthesis import SynthesisConfig, plan_parts

    with step_metrics("plan-synthesis", lineage_id):
        config = SynthesisConfig(n=n, seed=seed, test_fraction=test_fraction, text_backend=text_backend)
        return plan_parts(config, parts)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def synthesize_part(
    n: int,
    seed: int,
    test_fraction: float,
    text_backend: str,
    part: int,
    parts: int,
    lineage_id: str,
    shards: Output[Artifact],
):
    """Step 1b, one pod per part (ParallelFor): speak every `parts`-th shard of the build from shard `part`, on one
    process per CPU; text_backend "llm" reads OMNI_LLM_* from the environment (a Secret)."""
    import time
    from pathlib import Path

    from components.cpu import available_cpus
    from components.pipeline_metrics import step_metrics
    from components.synthesis import SynthesisConfig, synthesize_part

    with step_metrics("synthesize-part", lineage_id):
        start = time.time()
        config = SynthesisConfig(
            n=n, seed=seed, test_fraction=test_fraction, text_backend=text_backend, workers=available_cpus()
        )
        run = synthesize_part(config, Path(shards.path), part=part, parts=parts)
        shards.metadata.update(
            {
                "part": part,
                "parts": parts,
                "rows": len(run.rows),
                "shards": run.shards,
                "wall_seconds": round(time.time() - start, 2),
            }
        )


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def synthesize(
    n: int,
    seed: int,
    test_fraction: float,
    text_backend: str,
    parts: Input[List[Artifact]],
    lineage_id: str,
    dataset: Output[Dataset],
):
    """Step 1c: gather the parts' shards into the emotional dialogue set (manifest + 16 kHz WAVs), apply the
    filters and write the dataset card with its plots: the bytes a one-machine build makes."""
    import time
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from components.synthesis import SynthesisConfig, merge_parts

    with step_metrics("synthesize", lineage_id):
        start = time.time()
        config = SynthesisConfig(n=n, seed=seed, test_fraction=test_fraction, text_backend=text_backend)
        summary = merge_parts(config, [Path(part.path) for part in parts], Path(dataset.path))
        dataset.metadata.update(
            {
                "rows": summary.n,
                "shards": summary.shards,
                "parts": len(parts),
                "wall_seconds": round(time.time() - start, 2),
            }
        )


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    epochs: int,
    nproc: int,
    max_steps: int,
    seed: int,
    config_json: str,
    backend: str,
    num_nodes: int,
    gpus_per_node: int,
    trainjob_json: str,
    checkpoint_root: str,
    run_id: str,
    model: Output[Model],
    training: Output[Artifact],
):
    """Step 2a: training stage 1 (the thinker: reply text + emotion) with DeepSpeed ZeRO-2; exports the model.

    epochs, nproc, max_steps and seed arrive only as these parameters; `config_json` carries the other TrainConfig
    fields, and setting one of those four there too is an error (pipelines/train_parameters.py).
    backend "local": `nproc` torchrun ranks inside this pod. backend "trainjob": a Kubeflow Trainer TrainJob of
    `num_nodes` x `gpus_per_node` ranks on the shared PVC (`trainjob_json`: the rest of its TrainJobConfig).
    With `checkpoint_root` (a PVC directory or s3://...), checkpoints are mirrored under <root>/<run_id>/stage1
    and a retry of this step resumes from the newest complete one instead of starting over.
    """
    import json
    import shutil
    import time
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from components.training.backend import train_with_backend
    from components.training.mirror import run_checkpoint_uri
    from pipelines.train_parameters import stage_train_config

    with step_metrics("train", run_id):
        start = time.time()
        config = stage_train_config(1, config_json, epochs=epochs, nproc=nproc, max_steps=max_steps, seed=seed)
        if checkpoint_root:
            config.checkpoint_uri = run_checkpoint_uri(checkpoint_root, run_id, config.stage)
        job = {
            **json.loads(trainjob_json or "{}"),
            "num_nodes": num_nodes,
            "gpus_per_node": gpus_per_node,
            "lineage_id": run_id,
        }
        result = train_with_backend(Path(dataset.path), Path(training.path), config, backend, job, resume=True)
        shutil.copytree(result.model_dir, model.path)
        model.metadata.update(
            {
                **result.summary,
                "framework": "pytorch+deepspeed",
                "train_backend": backend,
                "wall_seconds": round(time.time() - start, 2),
            }
        )
        training.metadata.update(result.summary)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def speech_units(
    dataset: Input[Dataset],
    token2wav_json: str,
    restyled_per_reply: int,
    seed: int,
    lineage_id: str,
    units: Output[Artifact],
):
    """Step 2b: fit the speech-unit extractor (k-means over log-mel frames) on the reply audio and write every
    reply's units, the targets stage 2 trains the talker on. `token2wav_json`: EmotionOmniToken2WavConfig fields;
    `restyled_per_reply` > 0 also speaks each train reply in that many other emotions (components.speech.restyle)."""
    import json
    import time
    from pathlib import Path

    from components.cpu import fit_torch_threads
    from components.pipeline_metrics import step_metrics
    from components.speech.config import EmotionOmniToken2WavConfig
    from components.speech.dataset_units import build_speech_units

    with step_metrics("speech-units", lineage_id):
        fit_torch_threads()
        start = time.time()
        config = EmotionOmniToken2WavConfig.from_dict(json.loads(token2wav_json or "{}"))
        summary = build_speech_units(
            Path(dataset.path), Path(units.path), config, restyled_per_reply=restyled_per_reply, seed=seed
        )
        card = summary.card
        units.metadata.update(
            {
                "num_units": card["num_units"],
                "units_used": card["units_used"],
                "restyled_replies": card["restyled_replies"],
                "wall_seconds": round(time.time() - start, 2),
            }
        )
        if "centroid_resynthesis_stoi" in card:  # the local backend's k-means floor
            units.metadata["centroid_resynthesis_stoi"] = card["centroid_resynthesis_stoi"]["mean"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_speech(
    dataset: Input[Dataset],
    stage1_model: Input[Model],
    units: Input[Artifact],
    epochs: int,
    nproc: int,
    max_steps: int,
    seed: int,
    config_json: str,
    backend: str,
    num_nodes: int,
    gpus_per_node: int,
    trainjob_json: str,
    checkpoint_root: str,
    run_id: str,
    model: Output[Model],
    training: Output[Artifact],
):
    """Step 2c: training stage 2 with DeepSpeed: the stage-1 thinker frozen, the talker (gated fusion, AdaLN,
    speech-unit decoder) and the unit -> mel model trained. Exports the speaking model: thinker, talker and
    token2wav together. Parameters, checkpoints and retries as in step 2a (checkpoints under <root>/<run_id>/stage2)."""
    import json
    import shutil
    import time
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from components.training.backend import train_with_backend
    from components.training.mirror import run_checkpoint_uri
    from pipelines.train_parameters import stage_train_config

    with step_metrics("train-speech", run_id):
        start = time.time()
        config = stage_train_config(2, config_json, epochs=epochs, nproc=nproc, max_steps=max_steps, seed=seed)
        if checkpoint_root:
            config.checkpoint_uri = run_checkpoint_uri(checkpoint_root, run_id, config.stage)
        job = {
            **json.loads(trainjob_json or "{}"),
            "num_nodes": num_nodes,
            "gpus_per_node": gpus_per_node,
            "lineage_id": run_id,
        }
        result = train_with_backend(
            Path(dataset.path),
            Path(training.path),
            config,
            backend,
            job,
            init_model=Path(stage1_model.path),
            speech_units=Path(units.path),
            resume=True,
        )
        shutil.copytree(result.model_dir, model.path)
        model.metadata.update(
            {
                **result.summary,
                "framework": "pytorch+deepspeed",
                "train_backend": backend,
                "wall_seconds": round(time.time() - start, 2),
            }
        )
        training.metadata.update(result.summary)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    dataset: Input[Dataset],
    lineage_id: str,
    metrics: Output[Metrics],
    report_html: Output[HTML],
    report_md: Output[Markdown],
    evaluation: Output[Artifact],
):
    """Step 3: held-out emotion accuracy/F1, confusion matrices, chrF, latency, and the model's speech (judged
    emotion agreement, resynthesis STOI, MCD, prosody per emotion, DNSMOS); report as HTML and Markdown."""
    import shutil
    import time
    from pathlib import Path

    from components.cpu import fit_torch_threads
    from components.evaluation.evaluate import evaluate_model
    from components.pipeline_metrics import push_evaluation, step_metrics

    with step_metrics("evaluate", lineage_id):
        fit_torch_threads()
        start = time.time()
        outcome = evaluate_model(Path(model.path), Path(dataset.path), Path(evaluation.path))
        for name, value in outcome.summary().items():
            metrics.log_metric(name, value)
        shutil.copyfile(outcome.report.html, report_html.path)
        shutil.copyfile(outcome.report.markdown, report_md.path)
        if outcome.speech:
            for target in outcome.speech.targets:
                print("target", target.line())
        evaluation.metadata.update({**outcome.summary(), "wall_seconds": round(time.time() - start, 2)})
        push_evaluation(lineage_id, outcome.summary())


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register(
    model: Input[Model],
    training: Input[Artifact],
    speech_training: Input[Artifact],
    evaluation: Input[Artifact],
    dataset: Input[Dataset],
    tracking_uri: str,
    artifact_location: str,
    model_name: str,
    gate_json: str,
    lineage_id: str,
    registration: Output[Artifact],
    gate_report: Output[HTML],
) -> str:
    """Step 4a: decide the gate once (the floors, and no step back from the champion on the same split), log the run
    to MLflow (each training stage a child run; the decision, the report and a model card with it), register the
    speaking model as a version aliased `challenger`, tagged with the run's lineage ID. A retry of this step returns
    the version it registered. Returns the version; check_gate reads the decision."""
    import json
    import shutil
    import time
    from pathlib import Path

    from components.contracts import REPORT_HTML_FILE
    from components.pipeline_metrics import push_evaluation, step_metrics
    from components.registry.workflow import register_candidate

    with step_metrics("register", lineage_id):
        start = time.time()
        version = register_candidate(
            Path(model.path),
            [Path(training.path), Path(speech_training.path)],
            Path(evaluation.path),
            Path(dataset.path),
            Path(registration.path),
            tracking_uri=tracking_uri,
            artifact_location=artifact_location,
            model_name=model_name,
            gate_json=gate_json,
            lineage_id=lineage_id,
        )
        registration.metadata.update({**version, "wall_seconds": round(time.time() - start, 2)})
        (Path(registration.path) / "registration.json").write_text(json.dumps(version, indent=2))
        shutil.copyfile(Path(registration.path) / "evaluation" / REPORT_HTML_FILE, gate_report.path)
        push_evaluation(lineage_id, {}, gate_passed=version["gate"] == "passed")
        return version["version"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_gate(registration: Input[Artifact], lineage_id: str) -> bool:
    """Step 4b: the gate decision register made (read, not decided again), as the bool `dsl.If` branches on; its
    log prints the decision and each metric against the champion."""
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from components.registry.workflow import read_gate_decision

    with step_metrics("check-gate", lineage_id):
        decision = read_gate_decision(Path(registration.path))
        print("\n".join(decision.lines()))
        return decision.passed


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote(version: str, tracking_uri: str, model_name: str, lineage_id: str) -> str:
    """Step 4c (only when the gate passed): move the `champion` alias to this version."""
    from components.pipeline_metrics import step_metrics
    from components.registry.workflow import promote_champion

    with step_metrics("promote", lineage_id):
        return promote_champion(version, tracking_uri=tracking_uri, model_name=model_name)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def export_triton(
    version: str,
    tracking_uri: str,
    model_name: str,
    publish_uri: str,
    lineage_id: str,
    model_repository: Output[Artifact],
    publish_instance_kind: str,
):
    """Step 5a: a Triton model repository (python backend) built from the registered model version, and,
    when `publish_uri` is set, uploaded to `<publish_uri>/<version>/` where the Helm chart serves it.

    The repository carries the lineage: a "lineage_id" parameter in config.pbtxt, lineage.json and the model card
    beside the version; the MLflow version is tagged with where the repository went. The artifact is a CPU
    repository (the smoke test runs in a CPU pod); the published copy gets `publish_instance_kind` ("gpu" for the
    chart's gpu profile)."""
    import time
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from components.registry.workflow import download_version, record_serving, serving_lineage
    from serving.repository import build_model_repository, publish_model_repository

    with step_metrics("export-triton", lineage_id):
        start = time.time()
        model_dir = download_version(
            version, Path(model_repository.path + ".download"), tracking_uri=tracking_uri, model_name=model_name
        )
        lineage, card = serving_lineage(
            version, tracking_uri=tracking_uri, model_name=model_name, lineage_id=lineage_id
        )
        build_model_repository(
            model_dir, Path(model_repository.path), version=int(version), lineage=lineage, model_card=card
        )
        published = ""
        if publish_uri:
            published = publish_model_repository(
                Path(model_repository.path), publish_uri, version=int(version), instance_kind=publish_instance_kind
            )
            model_repository.metadata.update(
                {"published_uri": published, "published_instance_kind": publish_instance_kind}
            )
        record_serving(
            version,
            tracking_uri=tracking_uri,
            model_name=model_name,
            repository=model_repository.uri,
            published_uri=published,
        )
        model_repository.metadata.update(
            {"model_version": version, "lineage_id": lineage_id, "wall_seconds": round(time.time() - start, 2)}
        )


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def serve_smoke_test(
    model_repository: Input[Artifact], dataset: Input[Dataset], lineage_id: str, reply: Output[Artifact]
) -> str:
    """Step 5b: start tritonserver on the repository, send one held-out utterance, keep the spoken reply."""
    import json
    import time
    from pathlib import Path

    from components.pipeline_metrics import step_metrics
    from serving.smoke import smoke_test

    with step_metrics("serve-smoke-test", lineage_id):
        start = time.time()
        result = smoke_test(Path(model_repository.path), Path(dataset.path), Path(reply.path))
        reply.metadata.update({**result, "wall_seconds": round(time.time() - start, 2)})
        return json.dumps(result)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(
    model_repository: Input[Artifact],
    dataset: Input[Dataset],
    version: str,
    target: str,
    deploy_json: str,
    tracking_uri: str,
    model_name: str,
    lineage_id: str,
    deployment: Output[Artifact],
) -> str:
    """Step 6 (only when the gate passed and a deploy target is set): put the version into service and verify it.

    `target` "local": the version is installed into the `repository` an `omni serve` serves (at `url`, or a
    tritonserver this step starts for the deploy), smoke-tested under a candidate name, swapped in and watched.
    "kubernetes": the Helm release's Deployment is moved to `<published>/<version>`, the rollout awaited, the Service
    smoke-tested, the serving metrics watched, and the previous version restored on any failure. `deploy_json`: the
    other DeployConfig fields. The `production` alias moves only after a verified rollout. Returns the outcome:
    deployed, refused or rolled_back (the previous version serves); a failed restore fails the step."""
    import json
    import time
    from pathlib import Path

    from components.deploy.config import DeployConfig
    from components.pipeline_metrics import step_metrics
    from serving.deploy import deploy, smoke_wav_from_dataset

    with step_metrics("deploy", lineage_id):
        start = time.time()
        Path(deployment.path).mkdir(parents=True, exist_ok=True)
        outcome = deploy(
            DeployConfig.from_pipeline(target, deploy_json),
            int(version),
            smoke_wav=smoke_wav_from_dataset(Path(dataset.path)),
            lineage_id=lineage_id,
            tracking_uri=tracking_uri,
            model_name=model_name,
            source_repository=Path(model_repository.path),
        )
        print("\n".join(outcome.lines()))
        deployment.metadata.update(
            {
                "outcome": outcome.outcome,
                "reason": outcome.reason,
                "target": outcome.target,
                "model_version": outcome.version,
                "previous_version": outcome.previous_version,
                "serving_version": outcome.serving_version,
                "production_alias_moved": outcome.production_alias_moved,
                "wall_seconds": round(time.time() - start, 2),
            }
        )
        (Path(deployment.path) / "deployment.json").write_text(json.dumps(outcome.to_dict(), indent=2) + "\n")
        return outcome.outcome
