"""RegistryConfig: local layout, and refusal of settings that would scatter state across directories."""

import pytest

from components.registry.config import RegistryConfig, redact_uri


def test_local_config_uses_absolute_sqlite_and_artifact_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RegistryConfig.local("relative/mlflow")

    assert config.tracking_uri == f"sqlite:///{tmp_path}/relative/mlflow/mlflow.db"
    assert config.artifact_location == (tmp_path / "relative/mlflow/mlartifacts").as_uri()
    assert (tmp_path / "relative/mlflow/mlartifacts").is_dir()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tracking_uri": "sqlite:///mlflow.db"}, "relative"),
        ({"tracking_uri": "mlflow.db"}, "no scheme"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "artifact_location": "mlartifacts"}, "relative path"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "challenger_alias": "champion"}, "different names"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "champion_alias": "latest"}, "reserved by MLflow"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "challenger_alias": "v2"}, "reserved by MLflow"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "production_alias": "Latest"}, "reserved by MLflow"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "production_alias": "champion"}, "promoting a version would"),
        ({"tracking_uri": "sqlite:////abs/mlflow.db", "challenger_alias": "production"}, "registering a version"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegistryConfig(**kwargs)


def test_empty_artifact_location_from_a_pipeline_parameter_means_unset():
    assert RegistryConfig("http://mlflow:5000", artifact_location="").artifact_location is None


def test_passwords_are_masked_for_display():
    config = RegistryConfig("postgresql+psycopg2://mlflow:s3cr3t@db.mlops:5432/mlflow", artifact_location="s3://b/a")
    assert config.display_tracking_uri == "postgresql+psycopg2://mlflow:***@db.mlops:5432/mlflow"
    assert redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
