"""DeployConfig: one source for every deploy setting; bad values refused with the fix."""

import pytest

from components.deploy.config import DeployConfig
from components.errors import ConfigError


def test_no_target_is_the_default():
    assert DeployConfig().target == "" and DeployConfig.from_json("").target == ""


def test_pipeline_parameters_give_the_target_once():
    config = DeployConfig.from_pipeline("local", '{"repository": "/srv/serving", "window_s": 5}')
    assert (config.target, config.repository, config.window_s) == ("local", "/srv/serving", 5)
    with pytest.raises(ConfigError, match="deploy_target only"):
        DeployConfig.from_pipeline("local", '{"target": "kubernetes", "repository": "/srv"}')


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"target": "helm"}, "use one of"),
        ({"target": "local"}, "needs repository"),
        ({"target": "kubernetes"}, "needs release"),
        ({"target": "local", "repository": "/r", "window_s": -1}, "window_s"),
        ({"target": "local", "repository": "/r", "max_error_ratio": 2}, "fraction"),
        ({"target": "local", "repository": "/r", "poll_s": 0}, "poll_s"),
        ({"target": "local", "repository": "/r", "windw_s": 3}, "unknown DeployConfig keys"),
    ],
)
def test_bad_values_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        DeployConfig.from_dict(data)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_deploy_json_must_be_an_object(text):
    with pytest.raises(ConfigError, match="deploy_json"):
        DeployConfig.from_json(text)
