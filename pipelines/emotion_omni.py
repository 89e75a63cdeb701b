"""The Emotion Omni pipeline graph: synthesize (in parallel parts) -> train stage 1 -> speech units -> train
stage 2 -> evaluate -> register (the gate decided once, against the champion) -> check the gate -> promote (when
it passed) -> export -> serve -> deploy (when it passed and a deploy target is set).

Compile it for a cluster with `omni pipeline compile`; run it locally with `omni demo` (kfp.local). Platform
settings (GPUs, resources, secrets, retries, the shared PVC) are attached here, never inside components;
kfp.local ignores them, so the local run and the cluster run execute the same graph.

Stage 1 trains the thinker (reply text + emotion); the speech-units step fits k-means units on the reply audio;
stage 2 freezes the thinker and trains the talker and the unit -> mel model, so the registered and served model
speaks with its own voice. Both stages run where the `train_backend` parameter says: "local" (default) trains inside
the train step's pod
with torchrun; "trainjob" makes the step a launcher that runs a Kubeflow Trainer TrainJob of
`trainjob_num_nodes` x `trainjob_gpus_per_node` ranks and waits for it. That needs, on the cluster:
- a ReadWriteMany PVC (`ClusterSettings.shared_pvc`), mounted into the train step and every TrainJob node at
  `shared_mount_path`: the step stages the dataset there and copies the run back into its artifacts;
- the ClusterTrainingRuntime `trainjob_runtime` (torch ML policy, our component image);
- a run ServiceAccount allowed to create/get/delete TrainJobs and list pods/read pod logs in the run's namespace
  (pipelines/rbac/trainjob-launcher.yaml). kfp-kubernetes sets no per-task ServiceAccount, so it is the run's:
  `omni pipeline submit --service-account NAME`.
Clusters that train only with TrainJobs should compile with `train_gpus=0`: the launcher pod needs no GPU.
"""

from kfp import dsl, kubernetes

from components import pipeline_metrics
from components.cluster.settings import ClusterSettings  # defined with the cluster client; importable here too
from components.cluster.trainjob_config import TrainJobConfig, compile_time_json
from components.deploy.config import DeployConfig
from components.registry.config import RegistryConfig
from components.synthesis.config import SynthesisConfig
from components.training.config import SpeechTrainConfig, TrainConfig
from pipelines import steps

PIPELINE_NAME = pipeline_metrics.PIPELINE  # one name: the KFP pipeline and the metrics its steps push


def _registry_env(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(
        task, secret_name=settings.mlflow_secret, secret_key_to_env=settings.mlflow_secret_keys
    )


def _trainjob_json(settings: ClusterSettings) -> str:
    """The compile-time part of the train step's TrainJobConfig (num_nodes, gpus_per_node come at run time)."""
    return compile_time_json(settings, steps.COMPONENT_IMAGE)


def _on_gpu_nodes(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
    for key, value in sorted(settings.gpu_node_selector.items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for t in settings.gpu_tolerations:
        kubernetes.add_toleration(
            task,
            key=t.get("key"),
            operator=t.get("operator", "Equal"),
            value=t.get("value"),
            effect=t.get("effect"),
            toleration_seconds=t.get("tolerationSeconds"),
        )
    return task


def build_pipeline(settings: ClusterSettings = ClusterSettings()):
    """Return the pipeline function, with `settings` applied to its tasks."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Emotion Omni: synthesize, train both stages (thinker, then "
        "talker on speech units) with DeepSpeed, evaluate text and speech, "
        "gate against the champion and register in MLflow, export to "
        "Triton, smoke-serve, deploy with a verified rollout.",
    )
    # The defaults are the config dataclasses' (one seed drives the whole run: SynthesisConfig's and TrainConfig's
    # are the same), so `omni demo`, a compiled run and each step run alone start from the same values. The train
    # steps take epochs, nproc, max_steps and seed only as these parameters; *_config_json carry the other fields.
    def emotion_omni(
        n: int = SynthesisConfig.n,
        seed: int = SynthesisConfig.seed,
        test_fraction: float = SynthesisConfig.test_fraction,
        text_backend: str = SynthesisConfig.text_backend,
        synthesis_parts: int = 1,
        epochs: int = TrainConfig.epochs,
        nproc: int = TrainConfig.nproc,
        max_steps: int = TrainConfig.max_steps,
        train_config_json: str = "{}",
        speech_epochs: int = SpeechTrainConfig.epochs,
        speech_max_steps: int = SpeechTrainConfig.max_steps,
        speech_train_config_json: str = "{}",
        token2wav_json: str = "{}",
        restyled_per_reply: int = 0,
        train_backend: str = "local",
        trainjob_num_nodes: int = TrainJobConfig.num_nodes,
        trainjob_gpus_per_node: int = TrainJobConfig.gpus_per_node,
        tracking_uri: str = "",
        artifact_location: str = "",
        model_name: str = RegistryConfig.model_name,
        gate_json: str = "{}",
        triton_publish_uri: str = "",
        triton_instance_kind: str = "cpu",
        checkpoint_root: str = "",
        deploy_target: str = DeployConfig.target,
        deploy_json: str = "{}",
    ):
        # Synthesis fans out over `synthesis_parts` pods, each speaking every parts-th shard on its CPUs; the plan
        # checks engines and the LLM endpoint before any part starts, and the merge filters and writes the card.
        # A part is a cached KFP task, so a resubmitted run reuses the parts that finished.
        # The run's lineage ID (the KFP run id) goes to every step: MLflow, TrainJobs, Triton and metrics carry it.
        lineage = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        synthesis = {
            "n": n,
            "seed": seed,
            "test_fraction": test_fraction,
            "text_backend": text_backend,
            "lineage_id": lineage,
        }
        planned = steps.plan_synthesis(parts=synthesis_parts, **synthesis)
        with dsl.ParallelFor(planned.output, parallelism=settings.synthesis_parallelism) as part:
            spoken_part = steps.synthesize_part(part=part, parts=synthesis_parts, **synthesis)
            spoken_part.set_cpu_request(settings.synthesis_cpu).set_memory_request("2Gi").set_retry(settings.retries)
        data = steps.synthesize(parts=dsl.Collected(spoken_part.outputs["shards"]), **synthesis)
        data.set_cpu_request("2").set_memory_request("4Gi")
        planned.set_cpu_request("500m").set_memory_request("512Mi")
        if settings.llm_secret:
            for task in (planned, spoken_part, data):
                kubernetes.use_secret_as_env(
                    task,
                    secret_name=settings.llm_secret,
                    secret_key_to_env={
                        name: name for name in ("OMNI_LLM_BASE_URL", "OMNI_LLM_MODEL", "OMNI_LLM_API_KEY")
                    },
                )

        trained = steps.train(
            dataset=data.outputs["dataset"],
            epochs=epochs,
            nproc=nproc,
            max_steps=max_steps,
            seed=seed,
            config_json=train_config_json,
            backend=train_backend,
            num_nodes=trainjob_num_nodes,
            gpus_per_node=trainjob_gpus_per_node,
            trainjob_json=_trainjob_json(settings),
            checkpoint_root=checkpoint_root,
            run_id=lineage,
        )
        units = steps.speech_units(
            dataset=data.outputs["dataset"],
            token2wav_json=token2wav_json,
            restyled_per_reply=restyled_per_reply,
            seed=seed,
            lineage_id=lineage,
        )
        units.set_cpu_request("2").set_memory_request("4Gi")

        spoken = steps.train_speech(
            dataset=data.outputs["dataset"],
            stage1_model=trained.outputs["model"],
            units=units.outputs["units"],
            epochs=speech_epochs,
            nproc=nproc,
            max_steps=speech_max_steps,
            seed=seed,
            config_json=speech_train_config_json,
            backend=train_backend,
            num_nodes=trainjob_num_nodes,
            gpus_per_node=trainjob_gpus_per_node,
            trainjob_json=_trainjob_json(settings),
            checkpoint_root=checkpoint_root,
            run_id=lineage,
        )
        for task in (trained, spoken):
            # The registry Secret's S3 keys and endpoint reach the steps for an s3:// checkpoint_root.
            _registry_env(task, settings).set_retry(settings.train_retries)
            task.set_cpu_request("4").set_memory_request("16Gi")
            if settings.train_gpus:
                task.set_accelerator_type(settings.accelerator_type).set_accelerator_limit(settings.train_gpus)
                _on_gpu_nodes(task, settings)
            if settings.shared_pvc:
                kubernetes.mount_pvc(task, pvc_name=settings.shared_pvc, mount_path=settings.shared_mount_path)

        evaluated = steps.evaluate(model=spoken.outputs["model"], dataset=data.outputs["dataset"], lineage_id=lineage)
        evaluated.set_cpu_request("2").set_memory_request("4Gi")

        registered = steps.register(
            model=spoken.outputs["model"],
            training=trained.outputs["training"],
            speech_training=spoken.outputs["training"],
            evaluation=evaluated.outputs["evaluation"],
            dataset=data.outputs["dataset"],
            tracking_uri=tracking_uri,
            artifact_location=artifact_location,
            model_name=model_name,
            gate_json=gate_json,
            lineage_id=lineage,
        )
        _registry_env(registered, settings).set_retry(settings.retries)
        # 4 GiB: when the champion was evaluated on another split, this step evaluates it again on this one.
        registered.set_cpu_request("2").set_memory_request("4Gi")

        gate = steps.check_gate(registration=registered.outputs["registration"], lineage_id=lineage)
        gate.set_cpu_request("500m").set_memory_request("512Mi")
        # triton_publish_uri, e.g. s3://minio.minio.svc.cluster.local:9000/models/emotion-omni/triton: the base the
        # Helm chart's modelRepository points at ("" keeps the repository as a pipeline artifact only).
        # triton_instance_kind "gpu" publishes KIND_GPU, for the chart's gpu profile.
        exported = steps.export_triton(
            version=registered.outputs["Output"],
            tracking_uri=tracking_uri,
            model_name=model_name,
            publish_uri=triton_publish_uri,
            lineage_id=lineage,
            publish_instance_kind=triton_instance_kind,
        )
        _registry_env(exported, settings).set_retry(settings.retries)
        exported.set_cpu_request("1").set_memory_request("4Gi")  # downloads and repackages the model

        served = steps.serve_smoke_test(
            model_repository=exported.outputs["model_repository"], dataset=data.outputs["dataset"], lineage_id=lineage
        )
        served.set_cpu_request("2").set_memory_request("4Gi").set_retry(settings.retries)

        # Promote, and (when deploy_target is set) deploy: both only when the gate passed. The deploy waits for the
        # smoke test to have served the repository, and is not retried: a deploy that failed has restored the
        # previous version, and doing it again is a new decision. deploy_target "local" (an `omni serve` repository)
        # or "kubernetes" (the Helm release named in deploy_json).
        with dsl.If(gate.output == True, name="gate-passed"):  # noqa: E712  (KFP needs ==, not `is`)
            promoted = steps.promote(
                version=registered.outputs["Output"],
                tracking_uri=tracking_uri,
                model_name=model_name,
                lineage_id=lineage,
            )
            _registry_env(promoted, settings).set_retry(settings.retries)
            promoted.set_cpu_request("500m").set_memory_request("512Mi")

            with dsl.If(deploy_target != "", name="deploy-target-set"):
                deployed = steps.deploy(
                    model_repository=exported.outputs["model_repository"],
                    dataset=data.outputs["dataset"],
                    version=registered.outputs["Output"],
                    target=deploy_target,
                    deploy_json=deploy_json,
                    tracking_uri=tracking_uri,
                    model_name=model_name,
                    lineage_id=lineage,
                ).after(served, promoted)
                # The registry Secret: MLflow for the production alias, S3 keys to check the version was published.
                _registry_env(deployed, settings)
                deployed.set_cpu_request("1").set_memory_request("4Gi")

        if settings.judge_secret:
            for task in (evaluated, registered):
                kubernetes.use_secret_as_env(
                    task,
                    secret_name=settings.judge_secret,
                    secret_key_to_env={
                        name: name for name in ("OMNI_JUDGE_BASE_URL", "OMNI_JUDGE_MODEL", "OMNI_JUDGE_API_KEY")
                    },
                )
        if settings.pushgateway_url:
            for task in (
                planned,
                spoken_part,
                data,
                trained,
                units,
                spoken,
                evaluated,
                registered,
                gate,
                promoted,
                exported,
                served,
                deployed,
            ):
                task.set_env_variable(pipeline_metrics.URL_ENV, settings.pushgateway_url)

    return emotion_omni


def compile_pipeline(package_path: str, settings: ClusterSettings = ClusterSettings()) -> str:
    """Write the IR YAML a KFP cluster runs."""
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(settings), package_path=package_path)
    return package_path
