"""Send the pipeline to a Kubeflow Pipelines endpoint: one run now, or a recurring run on a cron schedule.

    submit_run("http://127.0.0.1:8080", params=["epochs=5", "train_backend=trainjob"])
    schedule_run("http://127.0.0.1:8080", cron="0 3 * * *", job_name="emotion-omni nightly")

The IR is compiled from `build_pipeline(settings)` unless a compiled package is given, and `KEY=VALUE`
parameters are typed by that IR's own parameter types, so a bad one fails before anything is sent.
Credentials come from the environment, never from arguments: KF_PIPELINES_SA_TOKEN_PATH names a file with a
ServiceAccount token (kfp's projected-token mechanism; inside a pod its default path is used when present);
kfp also reads KF_PIPELINES_IAP_OAUTH2_CLIENT_ID and the session cookie in ~/.config/kfp/context.json itself.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.errors import OmniError
from pipelines.emotion_omni import PIPELINE_NAME, ClusterSettings, compile_pipeline
from pipelines.train_parameters import check_pipeline_arguments

DEFAULT_EXPERIMENT = "emotion-omni"
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp's own variable
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"  # where KFP projects the token in a pod
_CONNECT_TIMEOUT_S = 5.0


class SubmitError(OmniError, RuntimeError):
    """A submission that cannot go ahead; the message names the key or URL and the fix."""


@dataclass
class Submission:
    kind: str  # "run" or "recurring_run"
    id: str
    name: str
    experiment_id: str
    url: str  # the run's (or recurring run's) page in the KFP UI
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None  # as sent to KFP (6 fields, seconds first)


# --- parameters -----------------------------------------------------------------------------------------
def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(raw)


def _json(kind: type):
    def parse(raw: str):
        value = json.loads(raw)
        if not isinstance(value, kind):
            raise ValueError(raw)
        return value

    return parse


# IR parameter type -> (parser, how to describe it in an error)
_PARSERS = {
    "STRING": (str, "a string"),
    "NUMBER_INTEGER": (int, "an integer"),
    "NUMBER_DOUBLE": (float, "a number"),
    "BOOLEAN": (_bool, "a boolean (true/false)"),
    "LIST": (_json(list), "a JSON list"),
    "STRUCT": (_json(dict), "a JSON object"),
}


def _choices() -> dict[str, tuple[str, ...]]:
    """String parameters that take one of a few values: refused here, not hours later in the step."""
    from components.training.backend import BACKENDS
    from serving.repository import INSTANCE_KINDS

    return {"train_backend": BACKENDS, "triton_instance_kind": tuple(INSTANCE_KINDS)}


def pipeline_parameters(package: Path) -> dict[str, dict[str, Any]]:
    """The pipeline's parameters as the compiled IR declares them: name -> {parameterType, defaultValue, ...}."""
    spec = next(yaml.safe_load_all(Path(package).read_text()))
    return spec["root"].get("inputDefinitions", {}).get("parameters", {})


def parse_params(pairs: Iterable[str], parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> typed values, checked against the pipeline's parameters."""
    values: dict[str, Any] = {}
    choices = _choices()
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--param {pair!r}: expected KEY=VALUE, e.g. --param epochs=5")
        if key not in parameters:
            raise SubmitError(
                f"--param {key}: the pipeline has no parameter {key!r}; known parameters: "
                f"{', '.join(sorted(parameters))}"
            )
        parse, described = _PARSERS.get(parameters[key]["parameterType"], (str, "a string"))
        try:
            values[key] = parse(raw)
        except ValueError:
            raise SubmitError(f"--param {key}={raw!r}: {key} must be {described}") from None
        allowed = choices.get(key)
        if allowed and values[key] not in allowed:
            raise SubmitError(f"--param {key}={raw!r}: {key} must be one of {', '.join(allowed)}")
    check_pipeline_arguments(values)  # a config JSON the train or deploy step would refuse hours in: refused here
    return values


def normalize_cron(expression: str) -> str:
    """KFP's scheduler reads 6 fields with seconds first: `0 3 * * *` would run at minute 3 of every hour.

    A standard 5-field expression gets a leading `0` seconds field; a 6-field one is passed through.
    """
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise SubmitError(
        f"--cron {expression!r}: expected 5 fields (minute hour day month weekday, e.g. "
        f"'0 3 * * *') or KFP's 6 (seconds first, e.g. '0 0 3 * * *')"
    )


# --- connection -------------------------------------------------------------------------------------------
def _check_reachable(host: str) -> None:
    """Fail fast, naming the URL, when nothing answers there (kfp would retry or hang instead)."""
    url = urlsplit(host)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise SubmitError(f"--host {host!r}: expected an http(s) URL, e.g. http://127.0.0.1:8080")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise SubmitError(
            f"cannot reach Kubeflow Pipelines at {host}: {error}. Check the URL (e.g. "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`, then --host "
            "http://127.0.0.1:8080)"
        ) from None


def _credentials():
    """kfp's ServiceAccount-token credentials when a token file is configured or projected here, else None."""
    path = os.environ.get(TOKEN_PATH_ENV)
    if path and not Path(path).is_file():
        raise SubmitError(f"{TOKEN_PATH_ENV}={path}: no such file (it must name a file holding the token)")
    if path or Path(DEFAULT_TOKEN_PATH).is_file():
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        return ServiceAccountTokenVolumeCredentials(path or DEFAULT_TOKEN_PATH)
    return None


@contextlib.contextmanager
def _api_errors(host: str) -> Iterator[None]:
    """kfp and its REST client raise several error types; each becomes one SubmitError naming the URL."""
    import kfp_server_api
    import urllib3

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # kfp.Client warns on every construction
            yield
    except kfp_server_api.ApiException as error:
        hint = {
            401: f"; set {TOKEN_PATH_ENV} to a file with a valid token",
            403: "; the identity lacks access to that namespace or experiment",
        }.get(error.status, "")
        body = (error.body or "").strip().replace("\n", " ")[:300] if isinstance(error.body, str) else ""
        raise SubmitError(
            f"Kubeflow Pipelines at {host} answered HTTP {error.status} {error.reason}"
            f"{': ' + body if body else ''}{hint}"
        ) from None
    except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as error:
        raise SubmitError(f"cannot talk to Kubeflow Pipelines at {host}: {error}") from None


def connect(host: str, namespace: str | None = None):
    """A kfp.Client for `host`, credentials from the environment."""
    import kfp

    _check_reachable(host)
    credentials = _credentials()
    with _api_errors(host):
        return kfp.Client(host=host.rstrip("/"), namespace=namespace or "kubeflow", credentials=credentials)


@contextlib.contextmanager
def _package(package: Path | None, settings: ClusterSettings) -> Iterator[Path]:
    if package is not None:
        if not Path(package).is_file():
            raise SubmitError(f"--package {package}: no such file (compile one with `omni pipeline compile`)")
        yield Path(package)
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(compile_pipeline(str(Path(tmp) / "pipeline.yaml"), settings))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H-%M-%S")


# --- submit / schedule --------------------------------------------------------------------------------------
def submit_run(
    host: str,
    package: Path | None = None,
    *,
    params: Iterable[str] = (),
    run_name: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    enable_caching: bool | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    settings: ClusterSettings = ClusterSettings(),
) -> Submission:
    """Start one run of the pipeline (compiled with `settings`, or `package`) on the KFP at `host`.

    `enable_caching` None keeps the compiled settings; `namespace` is the profile namespace of a multi-user
    Kubeflow; `service_account` is the one the run's pods use (it needs the TrainJob RBAC for train_backend
    trainjob, see pipelines/rbac/trainjob-launcher.yaml).
    """
    with _package(package, settings) as path:
        values = parse_params(params, pipeline_parameters(path))
        client = connect(host, namespace)
        with _api_errors(host):
            result = client.create_run_from_pipeline_package(
                str(path),
                arguments=values,
                run_name=run_name or f"{PIPELINE_NAME} {_now()}",
                experiment_name=experiment,
                namespace=namespace,
                enable_caching=enable_caching,
                service_account=service_account,
            )
    run = result.run_info
    return Submission(
        "run",
        run.run_id,
        run.display_name,
        run.experiment_id,
        f"{host.rstrip('/')}/#/runs/details/{run.run_id}",
        values,
    )


def schedule_run(
    host: str,
    cron: str,
    package: Path | None = None,
    *,
    job_name: str | None = None,
    max_concurrency: int = 1,
    params: Iterable[str] = (),
    experiment: str = DEFAULT_EXPERIMENT,
    enable_caching: bool | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    settings: ClusterSettings = ClusterSettings(),
) -> Submission:
    """Create a recurring run on `cron` (5 standard fields, or KFP's 6). Missed runs are not backfilled."""
    cron = normalize_cron(cron)
    if max_concurrency < 1:
        raise SubmitError(f"--max-concurrency {max_concurrency}: must be >= 1")
    with _package(package, settings) as path:
        values = parse_params(params, pipeline_parameters(path))
        client = connect(host, namespace)
        with _api_errors(host):
            found = client.create_experiment(experiment, namespace=namespace)
            job = client.create_recurring_run(
                found.experiment_id,
                job_name or f"{PIPELINE_NAME} ({cron})",
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=True,
                params=values,
                pipeline_package_path=str(path),
                enable_caching=enable_caching,
                service_account=service_account,
            )
    return Submission(
        "recurring_run",
        job.recurring_run_id,
        job.display_name,
        found.experiment_id,
        f"{host.rstrip('/')}/#/recurringrun/details/{job.recurring_run_id}",
        values,
        cron,
    )
