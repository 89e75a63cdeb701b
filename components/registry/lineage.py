"""One lineage ID, the whole chain: pipeline run -> MLflow run and stage runs -> model version (gate, aliases) ->
TrainJobs -> Triton repository and its published S3 copy.

    chain = trace(config, "19024073")     # a pipeline run's lineage ID, or a model version number
    print("\\n".join(chain.lines()))

The ID is the KFP run's (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`), stamped by the steps on everything they make; this
module reads it back from MLflow, where registration and export recorded each link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from components.contracts import (
    LINEAGE_LABEL,
    LINEAGE_TAG,
    METRIC_CHRF,
    METRIC_EMPATHY_SCORE,
    METRIC_RELEVANCE_USER,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_ACCURACY,
    MODEL_CARD_FILE,
)
from components.registry.champion import EVAL_SPLIT_TAG
from components.registry.config import RegistryConfig
from components.registry.connection import RegistryError, open_client
from components.registry.mlflow_registry import find_version_by_lineage, resolve

# Tags the export step sets on the model version (components.registry.workflow.record_serving).
TRITON_REPOSITORY_TAG, TRITON_PUBLISHED_TAG = "omni.triton_repository", "omni.triton_published_uri"
_HEADLINE_METRICS = (
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_CHRF,
    METRIC_RELEVANCE_USER,
    METRIC_EMPATHY_SCORE,
    METRIC_SPEECH_EMOTION_AGREEMENT,
)


@dataclass
class StageLink:
    name: str
    run_id: str
    trainjob: str  # the TrainJob that trained it; "" when it trained inside the pipeline step


@dataclass
class Lineage:
    lineage_id: str
    model_name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    run_status: str
    tracking_uri: str
    source_uri: str
    artifact_uri: str
    gate: str
    gate_reasons: str
    champion_at_registration: str
    eval_split: str
    metrics: dict[str, float]
    stages: list[StageLink] = field(default_factory=list)
    triton_repository: str = ""
    triton_published_uri: str = ""

    def lines(self) -> list[str]:
        stages = [
            f"  stage run        {s.name}: {s.run_id}" + (f" (TrainJob {s.trainjob})" if s.trainjob else "")
            for s in self.stages
        ]
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in self.metrics.items()) or "none recorded"
        return [
            f"lineage {self.lineage_id}",
            f"  pipeline run     {self.lineage_id} (the KFP run id)",
            f"  trainjobs        kubectl get trainjobs -A -l {LINEAGE_LABEL}={self.lineage_id} "
            f"({'; '.join(s.trainjob for s in self.stages if s.trainjob) or 'none: trained inside the steps'})",
            f"  mlflow run       {self.run_id} ({self.run_status}) at {self.tracking_uri}",
            *stages,
            f"  model version    {self.model_name} v{self.version}, aliases {list(self.aliases) or 'none'}",
            f"  model files      {self.source_uri}",
            f"  model card       {self.artifact_uri}/{MODEL_CARD_FILE}",
            f"  gate             {self.gate}"
            + (f": {self.gate_reasons}" if self.gate_reasons else "")
            + f" (champion at registration: {self.champion_at_registration})",
            f"  evaluation       split {self.eval_split or 'not recorded'}: {metrics}",
            f"  triton repo      {self.triton_repository or 'not exported'}",
            f"  published        {self.triton_published_uri or 'not published'}",
        ]


def trace(config: RegistryConfig, ref: str) -> Lineage:
    """The chain for `ref`: a lineage ID (a KFP run id) or, when no version carries it as one, a version number."""
    ref = str(ref).strip()
    version = find_version_by_lineage(config, ref)
    if version is None:
        if not ref.isdigit():
            raise RegistryError(
                f"no version of model {config.model_name!r} in {config.display_tracking_uri} carries lineage ID "
                f"{ref!r}. Fix: pass the ID the pipeline's summary printed (the KFP run id), or a version number."
            )
        version = resolve(config, ref)
    client = open_client(config)
    found = client.get_model_version(config.model_name, version.version)
    run = client.get_run(version.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.{MLFLOW_PARENT_RUN_ID} = '{run.info.run_id}'"
    )
    stages = sorted(
        (
            StageLink(c.data.tags.get(MLFLOW_RUN_NAME, c.info.run_id), c.info.run_id, c.data.params.get("trainjob", ""))
            for c in children
        ),
        key=lambda s: s.name,
    )
    tags = found.tags or {}
    return Lineage(
        lineage_id=tags.get(LINEAGE_TAG) or run.data.tags.get(LINEAGE_TAG) or "not recorded",
        model_name=config.model_name,
        version=version.version,
        aliases=version.aliases,
        run_id=version.run_id,
        run_status=run.info.status,
        tracking_uri=config.display_tracking_uri,
        source_uri=version.source_uri,
        artifact_uri=run.info.artifact_uri,
        gate=tags.get("gate", "not recorded"),
        gate_reasons=tags.get("gate_reasons", ""),
        champion_at_registration=tags.get("gate_champion_version", "-"),
        eval_split=run.data.tags.get(EVAL_SPLIT_TAG, ""),
        metrics={k: run.data.metrics[k] for k in _HEADLINE_METRICS if k in run.data.metrics},
        stages=stages,
        triton_repository=tags.get(TRITON_REPOSITORY_TAG, ""),
        triton_published_uri=tags.get(TRITON_PUBLISHED_TAG, ""),
    )
