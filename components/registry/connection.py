"""Reaching MLflow: a client bound to one RegistryConfig, and preflight checks with errors that say what to fix.

Everything goes through `MlflowClient(tracking_uri=...)`; nothing here touches MLflow's process-wide
tracking URI or active run, so two configs can be used side by side and tests leave no state behind.

The checks run before MLflow gets the chance to fail slowly or obscurely: against an unreachable database
MLflow retries for about 100 s before raising, against an unreachable server its REST client retries with
backoff for minutes, and an S3 store without boto3 or credentials fails only once the first artifact is
uploaded, in the middle of a run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import OmniError
from components.registry.config import RegistryConfig, redact_uri

# SQLAlchemy dialects MLflow accepts as a tracking store; anything else (http(s), databricks) is a server
# that MLflow reaches through its REST client.
_DATABASE_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})

# Seconds to wait for a database or MLflow server to answer before calling it unreachable.
_CONNECT_TIMEOUT_S = 10

# What the server preflight asks: a cheap call that, unlike /health, an authenticating server (mlflow
# --app-name basic-auth, or a proxy in front) refuses without valid credentials.
_PING_ENDPOINT = "/api/2.0/mlflow/registered-models/search"

# Where MLflow's REST client takes credentials from; named in errors, their values never shown.
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


class RegistryError(OmniError, RuntimeError):
    """The registry cannot do what was asked. The message names the problem and how to fix it."""


def open_client(config: RegistryConfig) -> MlflowClient:
    """An MlflowClient for `config`'s tracking store (runs and registry alike), after checking it answers."""
    if is_database_uri(config.tracking_uri):
        _ping_database(config)
    elif urlsplit(config.tracking_uri).scheme in ("http", "https"):
        _ping_server(config)
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def is_database_uri(uri: str) -> bool:
    """Whether `uri` names a SQL database (MLflow talks to it directly) rather than an MLflow server."""
    return urlsplit(uri).scheme.split("+")[0] in _DATABASE_SCHEMES


def check_artifact_store(uri: str) -> None:
    """Raise RegistryError if artifacts at `uri` cannot be written or read from this process.

    Only S3 needs anything beyond MLflow itself: the boto3 package and credentials boto3 can find.
    """
    if urlsplit(uri).scheme != "s3":
        return
    try:
        import boto3  # only needed, and only installed, where an S3 artifact store is used
    except ModuleNotFoundError:
        raise RegistryError(
            f"the artifact store {uri} is S3, which MLflow reaches through boto3, and boto3 is not installed. "
            "Fix: pip install boto3 in this image."
        ) from None
    if boto3.Session().get_credentials() is None:
        raise RegistryError(
            f"no AWS credentials found for the S3 artifact store {uri}. Fix: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (from a Kubernetes secret in a cluster), or AWS_PROFILE, or an IAM role; "
            "for MinIO/SeaweedFS also set MLFLOW_S3_ENDPOINT_URL to the S3 endpoint."
        )


@contextlib.contextmanager
def artifact_progress_bars_off() -> Iterator[None]:
    """Silence MLflow's tqdm progress bars for the duration, restoring the caller's setting after.

    The bars are carriage-return animations that turn pipeline logs into noise, and MLflow offers no
    per-call switch, only this environment variable, read at each transfer.
    """
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _ping_database(config: RegistryConfig) -> None:
    import sqlalchemy  # MLflow's own dependency; imported here because only database URIs need it

    uri, shown = config.tracking_uri, config.display_tracking_uri
    if uri.startswith("sqlite:"):
        parent = Path(uri.removeprefix("sqlite:///")).parent
        if not parent.is_dir():
            raise RegistryError(
                f"the sqlite tracking database {shown} is in {parent}, which does not exist. Fix: create the "
                "directory, or build the config with RegistryConfig.local(data_dir), which does."
            )
        connect_args = {}
    else:
        connect_args = {"connect_timeout": _CONNECT_TIMEOUT_S}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
    except ModuleNotFoundError as error:
        raise RegistryError(
            f"the tracking store {shown} needs the database driver '{error.name}', which is not installed. "
            "Fix: pip install psycopg2-binary (PostgreSQL) or pymysql (MySQL) in this image."
        ) from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise RegistryError(
            f"cannot reach the MLflow tracking database {shown}: {getattr(error, 'orig', None) or error}. "
            "Fix: check that the database is running and reachable from here (host, port, network policy) "
            "and that the user, password and database name are right."
        ) from error
    finally:
        engine.dispose()


def _ping_server(config: RegistryConfig) -> None:
    """One request, no retries, through MLflow's own HTTP layer (so the same credentials, TLS settings and
    auth plugins apply as for the calls that follow)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    uri, shown = config.tracking_uri, config.display_tracking_uri
    try:
        response = http_request(
            get_default_host_creds(uri),
            _PING_ENDPOINT,
            "GET",
            max_retries=0,
            backoff_factor=0,
            timeout=_CONNECT_TIMEOUT_S,
            raise_on_status=False,
            params={"max_results": 1},
        )
    except MlflowException as error:
        # MLflow's message repeats the URL, which may carry a password.
        reason = str(error.message).replace(uri.rstrip("/"), redact_uri(uri).rstrip("/"))
        raise RegistryError(
            f"cannot reach the MLflow tracking server {shown}: {reason}. Fix: check "
            "that the server is running and reachable from here (host, port, network policy), and that "
            "MLFLOW_TRACKING_URI (or the pipeline's tracking_uri) names it."
        ) from None
    status = response.status_code
    if status in (401, 403):
        given = [name for name in _CREDENTIAL_VARIABLES if os.environ.get(name)]
        problem = (
            "did not accept the credentials"
            if status == 401
            else "accepted the credentials but denies this user access to the model registry"
        )
        raise RegistryError(
            f"the MLflow tracking server {shown} {problem} (HTTP {status}); set now: {given or 'none'}. Fix: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to a user with "
            "access, on a cluster from the mlflow-credentials Secret."
        )
    if status != 200:
        raise RegistryError(
            f"{shown} answered GET {_PING_ENDPOINT} with HTTP {status} ({response.text[:200]!r}), so it is not a "
            "working MLflow tracking server at that address. Fix: check the URI's host, port and path prefix "
            "(MLFLOW_TRACKING_URI or the pipeline's tracking_uri) and the server's log."
        )
