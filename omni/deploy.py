"""`omni deploy` and `omni rollback`: put a published version into service, verified, or go back to the one before.

    omni deploy --version 3                      into the local `omni serve` (127.0.0.1:8000) of data/serving
    omni deploy --version 3 --from DIR           install the version from a built repository (an export artifact) first
    omni deploy --version 3 --release omni -n serving --prometheus-url http://prometheus:9090     a Helm release
    omni rollback                                the local server back to the version that served before

The restricted repository API's key comes from $TRITON_ADMIN_KEY (the one `omni serve` was started with), never a
flag. With an MLflow registry (--tracking-uri, $MLFLOW_TRACKING_URI, or the demo's under --data-dir) the outcome is
recorded on the version and a verified deploy moves its `production` alias.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from components.contracts import TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT
from omni.common import DEFAULT_DATA_DIR, CLIError, registry_uri

SERVING_REPOSITORY = "serving"  # under the data directory: the repository `omni serve` serves with its versions


def deploy_version(
    version: int,
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    repository: Path | None = None,
    url: str = f"127.0.0.1:{TRITON_HTTP_PORT}",
    grpc_url: str = f"127.0.0.1:{TRITON_GRPC_PORT}",
    metrics_url: str = f"http://127.0.0.1:{TRITON_METRICS_PORT}/metrics",
    source: Path | None = None,
    smoke_audio: Path | None = None,
    release: str = "",
    namespace: str = "",
    prometheus_url: str = "",
    service_url: str = "",
    window_s: float | None = None,
    tracking_uri: str = "",
    model_name: str | None = None,
):
    """Deploy `version` locally (the default) or to a Helm release (`release`); print and return the outcome."""
    from serving.deploy import deploy

    config = _config(
        data_dir, repository, url, grpc_url, metrics_url, release, namespace, prometheus_url, service_url, window_s
    )
    if source is not None and config.target != "local":
        raise CLIError("--from installs into a local repository; a cluster serves what the pipeline published to S3")
    return _report(
        deploy(
            config,
            version,
            smoke_wav=_smoke_wav(smoke_audio),
            tracking_uri=registry_uri(tracking_uri, data_dir),
            model_name=_model_name(model_name),
            source_repository=source,
        )
    )


def rollback(
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    repository: Path | None = None,
    url: str = f"127.0.0.1:{TRITON_HTTP_PORT}",
    grpc_url: str = f"127.0.0.1:{TRITON_GRPC_PORT}",
    metrics_url: str = f"http://127.0.0.1:{TRITON_METRICS_PORT}/metrics",
    to_version: int | None = None,
    smoke_audio: Path | None = None,
    window_s: float | None = None,
    tracking_uri: str = "",
    model_name: str | None = None,
):
    """Return the local server to the version that served before the current one (or `to_version`), verified."""
    from serving.deploy_local import rollback_local

    config = _config(data_dir, repository, url, grpc_url, metrics_url, "", "", "", "", window_s)
    outcome = rollback_local(config, smoke_wav=_smoke_wav(smoke_audio), to_version=to_version)
    uri = registry_uri(tracking_uri, data_dir)
    if uri:
        from components.registry.workflow import record_deployment

        record_deployment(outcome, tracking_uri=uri, model_name=_model_name(model_name))
    return _report(outcome)


def _config(
    data_dir, repository, url, grpc_url, metrics_url, release, namespace, prometheus_url, service_url, window_s
):
    from components.deploy.config import DeployConfig

    if release:
        config = DeployConfig(
            target="kubernetes",
            release=release,
            namespace=namespace,
            prometheus_url=prometheus_url,
            service_url=service_url,
        )
    else:
        repository = Path(repository or Path(data_dir) / SERVING_REPOSITORY).resolve()
        config = DeployConfig(
            target="local", repository=str(repository), url=url, grpc_url=grpc_url, metrics_url=metrics_url
        )
    return config if window_s is None else replace(config, window_s=window_s)


def _smoke_wav(smoke_audio: Path | None) -> bytes:
    from serving.client import check_size
    from serving.smoke import probe_wav

    if smoke_audio is None:
        return probe_wav()
    if not Path(smoke_audio).is_file():
        raise CLIError(f"--smoke-audio {smoke_audio} is not a file; pass a WAV, or leave it out for the probe signal")
    check_size(Path(smoke_audio).stat().st_size, str(smoke_audio))
    return Path(smoke_audio).read_bytes()


def _model_name(model_name: str | None) -> str:
    from components.registry.config import RegistryConfig

    return model_name or RegistryConfig.model_name


def _report(outcome):
    print("\n".join(outcome.lines()))
    if not outcome.ok:
        raise CLIError(f"v{outcome.version} was {outcome.outcome.replace('_', ' ')}: {outcome.reason}")
    return outcome


# --- parsers ------------------------------------------------------------------------------------------
def _local_flags() -> argparse.ArgumentParser:
    from omni.cli import DefaultHelp

    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("local target (an `omni serve` on this machine)")
    g.add_argument(
        "--repository",
        type=Path,
        help=f"the served repository with its versions (default: <data-dir>/{SERVING_REPOSITORY})",
    )
    g.add_argument("--url", default=f"127.0.0.1:{TRITON_HTTP_PORT}", help="the server's HTTP host:port")
    g.add_argument(
        "--grpc-url", default=f"127.0.0.1:{TRITON_GRPC_PORT}", help="its gRPC host:port (the repository API)"
    )
    g.add_argument(
        "--metrics-url",
        default=f"http://127.0.0.1:{TRITON_METRICS_PORT}/metrics",
        help="its Prometheus endpoint, read during the metrics window",
    )
    v = p.add_argument_group("verification")
    v.add_argument("--smoke-audio", type=Path, help="a WAV for the smoke request (default: a synthetic voiced probe)")
    v.add_argument(
        "--window-s",
        type=float,
        help=DefaultHelp("seconds of serving metrics watched after the move (default {})", "DeployConfig.window_s"),
    )
    r = p.add_argument_group("registry")
    r.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    r.add_argument("--tracking-uri", default="", help="MLflow (default: $MLFLOW_TRACKING_URI, else the demo's)")
    r.add_argument("--model-name", help="registered model name (default: RegistryConfig's)")
    return p


def add_parsers(sub) -> None:
    """`omni deploy` and `omni rollback`."""
    local = _local_flags()
    p = sub.add_parser(
        "deploy",
        parents=[local],
        help="put a published version into service: load, smoke-test, swap, watch; the old one stays on failure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", type=int, required=True, help="the registered (and published) version to serve")
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="a built Triton repository holding the version (the pipeline's export artifact): installed first",
    )
    k = p.add_argument_group("kubernetes target (the Helm release of charts/emotion-omni-triton)")
    k.add_argument("--release", default="", help="Helm release name; setting it selects the kubernetes target")
    k.add_argument("-n", "--namespace", default="", help="the release's namespace (default: the kubeconfig's)")
    k.add_argument("--prometheus-url", default="", help="Prometheus for the metrics window")
    k.add_argument("--service-url", default="", help="smoke request URL (default: the release's Service)")
    p.set_defaults(
        func=lambda a: deploy_version(
            a.version,
            data_dir=a.data_dir,
            repository=a.repository,
            url=a.url,
            grpc_url=a.grpc_url,
            metrics_url=a.metrics_url,
            source=a.source,
            smoke_audio=a.smoke_audio,
            release=a.release,
            namespace=a.namespace,
            prometheus_url=a.prometheus_url,
            service_url=a.service_url,
            window_s=a.window_s,
            tracking_uri=a.tracking_uri,
            model_name=a.model_name,
        )
    )
    p = sub.add_parser(
        "rollback",
        parents=[local],
        help="return the local server to the version that served before, verified like a deploy",
    )
    p.add_argument("--to-version", type=int, help="a published version to return to (default: the one before)")
    p.set_defaults(
        func=lambda a: rollback(
            data_dir=a.data_dir,
            repository=a.repository,
            url=a.url,
            grpc_url=a.grpc_url,
            metrics_url=a.metrics_url,
            to_version=a.to_version,
            smoke_audio=a.smoke_audio,
            window_s=a.window_s,
            tracking_uri=a.tracking_uri,
            model_name=a.model_name,
        )
    )


# --- omni bench rollout -------------------------------------------------------------------------------
def bench_rollout(
    model: Path,
    out: Path,
    candidate: Path | None = None,
    dataset: Path | None = None,
    rate: float = 2.0,
    max_in_flight: int = 2,
    baseline_s: float = 20.0,
    window_s: float = 10.0,
    slow_s: float | None = None,
) -> dict:
    """Deploy v2 over v1 on a local tritonserver under a steady load; print what callers saw before, during, after."""
    from serving import bench
    from serving.bench_rollout import bench_rollout as run

    wav = bench.held_out_turns(Path(dataset), limit=1)[0] if dataset else None
    result = run(
        Path(model),
        Path(out),
        rate_per_s=rate,
        max_in_flight=max_in_flight,
        baseline_s=baseline_s,
        slow_s=slow_s,
        candidate_model_dir=candidate,
        window_s=window_s,
        wav=wav,
    )
    print(Path(result["files"]["table"]).read_text())
    print(" ".join(f"{name} {path}" for name, path in result["files"].items()))
    if not result["zero_downtime"]:
        raise CLIError(f"requests failed during the rollout: see {result['files']['table']}")
    return result


def add_bench_parser(bench) -> None:
    """`omni bench rollout`."""
    p = bench.add_parser(
        "rollout",
        help="zero downtime, measured: deploy v2 over v1 under a steady loopback load; failed and slow requests "
        "before, during and after the deploy",
    )
    p.add_argument("--model", type=Path, required=True, help="the exported model served as v1 (and v2)")
    p.add_argument("--out", type=Path, required=True, help="where rollout.json, rollout.md and rollout.png go")
    p.add_argument("--candidate", type=Path, help="another exported model to deploy as v2 (default: --model)")
    p.add_argument(
        "--dataset", type=Path, help="a synthesized dataset: its first held-out turn is sent (default: the probe)"
    )
    p.add_argument("--rate", type=float, default=2.0, help="requests started per second (default 2)")
    p.add_argument("--max-in-flight", type=int, default=2, help="the load's bound on concurrent requests (default 2)")
    p.add_argument("--baseline-s", type=float, default=20.0, help="seconds of plain serving before and after")
    p.add_argument("--window-s", type=float, default=10.0, help="the deploy's metrics window (default 10)")
    p.add_argument("--slow-s", type=float, help="what counts as slow (default: 2x the before phase's p95)")
    p.set_defaults(
        func=lambda a: bench_rollout(
            a.model, a.out, a.candidate, a.dataset, a.rate, a.max_in_flight, a.baseline_s, a.window_s, a.slow_s
        )
    )
