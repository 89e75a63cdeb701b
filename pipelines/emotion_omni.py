"""The Emotion Omni pipeline graph: synthesize -> train -> evaluate -> register -> gate -> export -> serve.

Compile it for a cluster with `omni pipeline compile`; run it locally with `omni demo` (kfp.local). Platform
settings (GPUs, resources, secrets, retries) are attached here, never inside components; kfp.local ignores
them, so the local run and the cluster run execute the same graph.
"""

from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from pipelines import steps

PIPELINE_NAME = "emotion-omni"


@dataclass(frozen=True)
class ClusterSettings:
    """What a cluster run needs beyond the graph. Defaults suit a small GPU node pool."""

    train_gpus: int = 1                          # per training pod; DeepSpeed runs one rank per GPU
    accelerator_type: str = "nvidia.com/gpu"
    # Secret holding MLFLOW_TRACKING_URI (+ S3 keys for the artifact store); mounted as env, never in YAML.
    mlflow_secret: str = "mlflow-credentials"
    mlflow_secret_keys: dict[str, str] = field(default_factory=lambda: {
        "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL",
    })
    retries: int = 2                             # for steps that talk to services (MLflow, Triton start)


def _registry_env(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(task, secret_name=settings.mlflow_secret,
                                        secret_key_to_env=settings.mlflow_secret_keys)


def build_pipeline(settings: ClusterSettings = ClusterSettings()):
    """Return the pipeline function, with `settings` applied to its tasks."""

    @dsl.pipeline(name=PIPELINE_NAME, description="Emotion Omni: synthesize, train with DeepSpeed, evaluate, "
                                                  "register in MLflow, gate, export to Triton, smoke-serve.")
    def emotion_omni(
        n: int = 300, seed: int = 0, test_fraction: float = 0.2,
        epochs: int = 30, nproc: int = 2, max_steps: int = 0, train_config_json: str = "{}",
        tracking_uri: str = "", artifact_location: str = "", model_name: str = "emotion-omni",
        gate_json: str = "{}",
    ):
        data = steps.synthesize(n=n, seed=seed, test_fraction=test_fraction)
        data.set_cpu_request("2").set_memory_request("2Gi")

        trained = steps.train(dataset=data.outputs["dataset"], epochs=epochs, nproc=nproc, max_steps=max_steps,
                              seed=seed, config_json=train_config_json)
        trained.set_cpu_request("4").set_memory_request("16Gi")
        if settings.train_gpus:
            trained.set_accelerator_type(settings.accelerator_type).set_accelerator_limit(settings.train_gpus)

        evaluated = steps.evaluate(model=trained.outputs["model"], dataset=data.outputs["dataset"])
        evaluated.set_cpu_request("2").set_memory_request("4Gi")

        registered = steps.register(
            model=trained.outputs["model"], training=trained.outputs["training"],
            evaluation=evaluated.outputs["evaluation"], tracking_uri=tracking_uri,
            artifact_location=artifact_location, model_name=model_name, gate_json=gate_json)
        _registry_env(registered, settings).set_retry(settings.retries)

        gate = steps.check_gate(evaluation=evaluated.outputs["evaluation"], gate_json=gate_json)
        with dsl.If(gate.output == True, name="gate-passed"):  # noqa: E712  (KFP needs ==, not `is`)
            promoted = steps.promote(version=registered.outputs["Output"], tracking_uri=tracking_uri,
                                     model_name=model_name)
            _registry_env(promoted, settings).set_retry(settings.retries)

        exported = steps.export_triton(version=registered.outputs["Output"], tracking_uri=tracking_uri,
                                       model_name=model_name)
        _registry_env(exported, settings).set_retry(settings.retries)

        served = steps.serve_smoke_test(model_repository=exported.outputs["model_repository"],
                                        dataset=data.outputs["dataset"])
        served.set_cpu_request("2").set_memory_request("4Gi").set_retry(settings.retries)

    return emotion_omni


def compile_pipeline(package_path: str, settings: ClusterSettings = ClusterSettings()) -> str:
    """Write the IR YAML a KFP cluster runs."""
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(settings), package_path=package_path)
    return package_path
