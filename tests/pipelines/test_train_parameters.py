"""The train steps' config: epochs, nproc, max_steps and seed come once, as typed pipeline parameters; the config
JSON carries the rest, and a value given both ways is an error, not a silent override."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components.errors import ConfigError
from components.training.config import SpeechTrainConfig, TrainConfig
from pipelines import steps
from pipelines.emotion_omni import compile_pipeline
from pipelines.train_parameters import CONFIG_JSON_PARAMETER, TYPED_FIELDS, stage_train_config

TYPED = {"epochs": 3, "nproc": 1, "max_steps": 7, "seed": 5}


@pytest.mark.parametrize("stage, expected", [(1, TrainConfig), (2, SpeechTrainConfig)])
def test_typed_values_and_the_json_fields_make_the_stage_config(stage, expected):
    config = stage_train_config(stage, json.dumps({"zero_stage": 3, "log_every_steps": 1}), **TYPED)
    assert type(config) is expected and config.stage == stage
    assert (config.epochs, config.nproc, config.max_steps, config.seed) == (3, 1, 7, 5)
    assert (config.zero_stage, config.log_every_steps) == (3, 1)
    assert stage_train_config(stage, "", **TYPED).zero_stage == expected.zero_stage  # "" is no fields


@pytest.mark.parametrize(
    "stage, given, names",
    [
        (1, {"epochs": 30}, "train_config_json sets ['epochs'], which the pipeline parameters epochs"),
        (
            2,
            {"seed": 1, "max_steps": 2},
            "sets ['max_steps', 'seed'], which the pipeline parameters speech_max_steps, seed",
        ),
    ],
)
def test_a_value_given_both_ways_is_refused_naming_the_parameter(stage, given, names):
    with pytest.raises(ConfigError, match="give each value once") as error:
        stage_train_config(stage, json.dumps(given), **TYPED)
    assert names in str(error.value)


@pytest.mark.parametrize(
    "config_json, message",
    [
        ('{"stage": 2}', "sets 'stage'; the step decides it"),
        ('{"epochs": ', "train_config_json is not JSON"),
        ("[1, 2]", "train_config_json is list, not a JSON object"),
    ],
)
def test_a_bad_config_json_is_a_config_error(config_json, message):
    with pytest.raises(ConfigError, match=message):
        stage_train_config(1, config_json, **TYPED)


def test_the_train_step_refuses_a_value_given_twice_before_it_trains(tmp_path):
    """The step itself (its Python function, as the pod runs it): the error comes before any dataset is read."""
    missing = SimpleNamespace(path=str(tmp_path / "never-read"), metadata={})
    with pytest.raises(ConfigError, match=r"sets \['nproc'\]"):
        steps.train.python_func(
            dataset=missing,
            **TYPED,
            config_json='{"nproc": 4}',
            backend="local",
            num_nodes=1,
            gpus_per_node=0,
            trainjob_json="{}",
            checkpoint_root="",
            run_id="run-1",
            model=missing,
            training=missing,
        )
    assert not (tmp_path / "never-read").exists()


def test_the_pipeline_wires_the_parameters_the_error_names(tmp_path):
    """TYPED_FIELDS names, per stage, the pipeline parameter feeding each typed field: the compiled graph agrees."""
    spec = next(yaml.safe_load_all(Path(compile_pipeline(str(tmp_path / "p.yaml"))).read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    for stage, task in ((1, "train"), (2, "train-speech")):
        inputs = tasks[task]["inputs"]["parameters"]
        wired = {field: inputs[field]["componentInputParameter"] for field in TYPED_FIELDS[stage]}
        assert wired == TYPED_FIELDS[stage]
        assert inputs["config_json"]["componentInputParameter"] == CONFIG_JSON_PARAMETER[stage]


def test_a_local_run_refuses_a_value_given_twice_before_any_step_runs(tmp_path):
    """The train step would refuse it too, but only after synthesis: run_local checks before it starts."""
    from pipelines.local_run import run_local

    with pytest.raises(ConfigError, match=r"speech_train_config_json sets \['epochs'\].*speech_epochs"):
        run_local(tmp_path, speech_epochs=2, speech_train_config_json='{"epochs": 3}')
    assert not (tmp_path / "kfp").exists()


def test_a_local_run_refuses_a_bad_deploy_config_before_any_step_runs(tmp_path):
    """The deploy step runs last: a deploy_json it would refuse is refused before synthesis and training."""
    from pipelines.local_run import run_local

    with pytest.raises(ConfigError, match="deploy target 'local' needs repository"):
        run_local(tmp_path, deploy_target="local", deploy_json="{}")
    with pytest.raises(ConfigError, match="unknown DeployConfig keys"):
        run_local(tmp_path, deploy_target="local", deploy_json='{"repository": "/srv", "window": 5}')
    assert not (tmp_path / "kfp").exists()
