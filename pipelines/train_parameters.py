"""The train steps' TrainConfig: the typed pipeline parameters plus a JSON of the rest, each value given once.

Epochs, ranks, the early stop and the seed are typed pipeline parameters: what the KFP UI shows and
`omni pipeline submit --param` sets. The config JSON (`train_config_json`, `speech_train_config_json`) carries every
other TrainConfig field. A field given both ways is refused rather than one silently winning, and so is "stage",
which the step decides.
"""

from __future__ import annotations

import json
from typing import Any

from components.deploy.config import DeployConfig
from components.errors import ConfigError
from components.training.config import TrainConfig

# Per stage: TrainConfig field -> the pipeline parameter that sets it, and the parameter holding the config JSON.
# pipelines/emotion_omni.py wires these; tests/pipelines/test_train_parameters.py checks the compiled graph agrees.
TYPED_FIELDS = {
    1: {"epochs": "epochs", "nproc": "nproc", "max_steps": "max_steps", "seed": "seed"},
    2: {"epochs": "speech_epochs", "nproc": "nproc", "max_steps": "speech_max_steps", "seed": "seed"},
}
CONFIG_JSON_PARAMETER = {1: "train_config_json", 2: "speech_train_config_json"}


def stage_train_config(stage: int, config_json: str, **typed: Any) -> TrainConfig:
    """The stage's TrainConfig (a SpeechTrainConfig for stage 2) from the step's typed values and its config JSON."""
    if set(typed) != set(TYPED_FIELDS[stage]):  # the steps pass exactly these: a mismatch is a bug in steps.py
        raise ValueError(f"stage {stage} takes typed fields {sorted(TYPED_FIELDS[stage])}, got {sorted(typed)}")
    return TrainConfig.from_dict({**config_json_fields(stage, config_json), **typed, "stage": stage})


def config_json_fields(stage: int, config_json: str) -> dict[str, Any]:
    """The TrainConfig fields a stage's config JSON sets; ConfigError when it is not a JSON object or sets the stage
    or a field that a typed pipeline parameter sets."""
    source = CONFIG_JSON_PARAMETER[stage]
    try:
        given = json.loads(config_json or "{}")
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{source} is not JSON ({error}): give a TrainConfig object, e.g. '{{\"zero_stage\": 3}}'"
        ) from None
    if not isinstance(given, dict):
        raise ConfigError(f"{source} is {type(given).__name__}, not a JSON object of TrainConfig fields")
    if "stage" in given:
        raise ConfigError(f"{source} sets 'stage'; the step decides it (this one trains stage {stage}): remove it")
    twice = sorted(set(given) & set(TYPED_FIELDS[stage]))
    if twice:
        parameters = ", ".join(TYPED_FIELDS[stage][name] for name in twice)
        raise ConfigError(
            f"{source} sets {twice}, which the pipeline parameters {parameters} already set: give each value once, "
            f"as the parameter (KFP UI, or `omni pipeline submit --param NAME=VALUE`), and remove it from {source}"
        )
    return given


def check_pipeline_arguments(arguments: dict[str, Any]) -> None:
    """Refuse, before a run starts, config JSONs the train and deploy steps would refuse only after synthesis and
    training have run."""
    for stage, parameter in CONFIG_JSON_PARAMETER.items():
        config_json_fields(stage, arguments.get(parameter, ""))
    DeployConfig.from_pipeline(arguments.get("deploy_target", ""), arguments.get("deploy_json", ""))
