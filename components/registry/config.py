"""RegistryConfig: where MLflow keeps runs, the model registry and artifacts, and the aliases we use.

    config = RegistryConfig.local(Path(".data/mlflow"))     # laptop: sqlite + a local dir
    config = RegistryConfig(                                 # cluster: shared database + S3
        f"postgresql+psycopg2://mlflow:{os.environ['MLFLOW_DB_PASSWORD']}@mlflow-db/mlflow",
        artifact_location="s3://mlflow/artifacts")

The registry uses aliases, not the deprecated stages: every registered version becomes the challenger,
promotion moves the champion alias, which serving resolves, and a verified deploy moves the production alias to
the version that serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from components.contracts import PRODUCTION_ALIAS
from components.errors import ConfigError


@dataclass
class RegistryConfig:
    # 'sqlite:////abs/path/mlflow.db' locally, 'postgresql+psycopg2://user:pass@host/db' in clusters, or an
    # MLflow server's 'http(s)://...'. Runs and the model registry share it.
    tracking_uri: str
    # Artifact root given to the experiment when it is first created: an absolute dir, file:// or s3://.
    # Required for a database tracking URI, which has no artifact root of its own (MLflow would otherwise
    # write to ./mlruns under whatever directory the process happens to run in). None suits an MLflow
    # server, which proxies artifacts to its own root.
    artifact_location: str | None = None
    experiment: str = "emotion-omni"
    model_name: str = "emotion-omni"
    challenger_alias: str = "challenger"  # set on every newly registered version, awaiting promotion
    champion_alias: str = "champion"  # the version serving loads; moved only by promote()
    # the version actually serving in production; moved only by a verified deploy (workflow.record_deployment)
    production_alias: str = PRODUCTION_ALIAS

    def __post_init__(self) -> None:
        # KFP string parameters cannot carry None, so pipelines pass "" for "not set".
        if self.artifact_location == "":
            self.artifact_location = None
        scheme = urlsplit(self.tracking_uri).scheme
        if not scheme:
            raise ConfigError(
                f"tracking_uri {self.tracking_uri!r} has no scheme. Fix: use 'sqlite:////abs/path/mlflow.db', "
                "'postgresql+psycopg2://user:pass@host/db' or 'http://mlflow:5000'."
            )
        if scheme == "sqlite" and not self.tracking_uri.startswith("sqlite:////"):
            raise ConfigError(
                f"tracking_uri {self.tracking_uri!r} is a relative (or in-memory) sqlite database, which would "
                "move with the current directory. Fix: give an absolute path, 'sqlite:////abs/path/mlflow.db', "
                "or use RegistryConfig.local(data_dir)."
            )
        location = self.artifact_location
        if location is not None and not urlsplit(location).scheme and not Path(location).is_absolute():
            raise ConfigError(
                f"artifact_location {location!r} is a relative path, which MLflow resolves against the current "
                "directory. Fix: pass an absolute directory, a file:// URI or an s3:// URI."
            )
        for alias in (self.challenger_alias, self.champion_alias, self.production_alias):
            # MLflow keeps "latest" and "v<number>" for itself; it refuses them only after a version exists.
            if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
                raise ConfigError(
                    f"alias {alias!r} is reserved by MLflow ('latest' and 'v<number>' name versions). "
                    "Fix: choose another alias name."
                )
        if self.challenger_alias == self.champion_alias:
            raise ConfigError(
                f"challenger_alias and champion_alias are both {self.champion_alias!r}, so registering a version "
                "would put it straight into serving. Fix: give the two aliases different names."
            )
        for name, alias, move in (
            ("challenger_alias", self.challenger_alias, "registering"),
            ("champion_alias", self.champion_alias, "promoting"),
        ):
            if alias == self.production_alias:
                raise ConfigError(
                    f"production_alias and {name} are both {alias!r}, so {move} a version would mark it as "
                    "serving in production before any deploy verified it. Fix: give the aliases different names."
                )

    @classmethod
    def local(cls, data_dir: Path, **overrides) -> RegistryConfig:
        """A sqlite registry at data_dir/mlflow.db with artifacts under data_dir/mlartifacts (both created)."""
        root = Path(data_dir).expanduser().resolve()
        artifacts = root / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return cls(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=artifacts.as_uri(), **overrides)

    @property
    def display_tracking_uri(self) -> str:
        """The tracking URI with any password masked, safe for logs, errors and pipeline metadata."""
        return redact_uri(self.tracking_uri)


def redact_uri(uri: str) -> str:
    """`uri` with the password of a 'scheme://user:password@host' URI replaced by '***'."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
