"""Pipeline step outcomes, evaluation metrics and the gate decision, pushed to a Prometheus Pushgateway.

    with step_metrics("train", lineage_id):              # times the body, pushes success 1/0, re-raises
        ...
    push_evaluation(lineage_id, outcome.summary())        # after evaluate (gate_passed=None: not decided yet)
    push_evaluation(lineage_id, {}, gate_passed=passed)   # after the gate

Off unless OMNI_PUSHGATEWAY_URL is set (empty counts as unset): then every call is a silent no-op. On a cluster
it is CLUSTER_URL, the Pushgateway of infra/bootstrap step 6. A push that fails (gateway down, refusing, malformed
URL) prints one warning to stderr and the step carries on: monitoring never breaks training. The series, each
also labelled pipeline and lineage_id (prometheusrule-platform.yaml in infra/bootstrap/06-monitoring alerts on
the step and gate ones):

    omni_pipeline_step_success{job="omni_pipeline_step", step}      1 succeeded, 0 failed
    omni_pipeline_step_duration_seconds{job="omni_pipeline_step", step}
    omni_pipeline_evaluation_metric{job="omni_pipeline_evaluation", metric}
    omni_pipeline_gate_passed{job="omni_pipeline_gate"}              1 passed, 0 failed

Grouping: one Pushgateway group per (job, pipeline[, step]), never per run, and every push is a PUT that replaces
its whole group, so the gateway holds exactly the latest run of each step, the latest evaluation and the latest
gate decision, and groups cannot accumulate. The lineage id is a label on the series instead: a dashboard or an
alert names the run without a join, and a later run's failure is a new alert rather than the old one continuing.
The price is a few new Prometheus series per run, which retention bounds. Evaluation and gate have groups of
their own so that the gate step's push does not erase the metrics the evaluate step pushed (or the reverse).

Non-finite metric values (NaN, +-inf: a metric that could not be computed) are skipped rather than pushed as NaN:
the series is then absent for that run ("no data"), while a NaN would poison sums and averages over metrics.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import time
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

URL_ENV = "OMNI_PUSHGATEWAY_URL"
# The bootstrap's Pushgateway (infra/bootstrap/helmfile.yaml release prometheus-pushgateway; tests/infra check it).
CLUSTER_URL = "http://prometheus-pushgateway.monitoring.svc:9091"
PIPELINE = "emotion-omni"  # pipelines/emotion_omni.py PIPELINE_NAME (components never import pipelines/)
PREFIX = "omni_pipeline"
STEP_JOB, EVALUATION_JOB, GATE_JOB = f"{PREFIX}_step", f"{PREFIX}_evaluation", f"{PREFIX}_gate"
# Seconds one push may take. A gateway that drops packets would otherwise hold a finished step for minutes.
TIMEOUT_S = 5.0


def _gateway_url() -> str | None:
    """OMNI_PUSHGATEWAY_URL, or None when pushing is off (unset or empty) or the URL is unusable (warned)."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
        usable = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        _warn(
            f"{URL_ENV}={url!r} is not an http(s) URL with a host, so pipeline metrics are not pushed. Fix: set "
            f"it like {CLUSTER_URL}, or unset it to turn pushing off."
        )
        return None
    return url


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _push(url: str, job: str, grouping_key: dict[str, str], fill) -> bool:
    """PUT one group: `fill(registry)` adds its gauges. False (after one warning) when the push failed."""
    from prometheus_client import CollectorRegistry, push_to_gateway

    registry = CollectorRegistry()  # one per push: only this group's series, nothing from the process's default
    fill(registry)
    try:
        push_to_gateway(url, job=job, registry=registry, grouping_key=grouping_key, timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001  (any failure here is the gateway's, never the step's)
        _warn(
            f"could not push pipeline metrics (job {job}, {grouping_key}) to {URL_ENV}={url}: "
            f"{type(exc).__name__}: {exc}. The step's result is unaffected. Fix: check that the Pushgateway "
            f"answers there (kubectl -n monitoring get pods -l app.kubernetes.io/name=prometheus-pushgateway), "
            f"or unset {URL_ENV} to turn pushing off."
        )
        return False
    return True


def _gauge(registry, name: str, doc: str, labels: dict[str, str], value: float) -> None:
    from prometheus_client import Gauge

    Gauge(f"{PREFIX}_{name}", doc, tuple(labels), registry=registry).labels(**labels).set(value)


def _require(**names: str) -> None:
    for argument, value in names.items():
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"pipeline_metrics: {argument} must be a non-empty string, got {value!r}. Fix: pass "
                f"the step's name and the run's lineage id (the KFP run id, or local-<utc time>)."
            )


@contextlib.contextmanager
def step_metrics(step: str, lineage_id: str, pipeline: str = PIPELINE) -> Iterator[None]:
    """Time the body and push the step's outcome: success 1 when it returns, 0 when it raises (any exception,
    re-raised unchanged after the push). A no-op without OMNI_PUSHGATEWAY_URL."""
    _require(step=step, lineage_id=lineage_id, pipeline=pipeline)
    start = time.monotonic()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:  # runs for any exception too, which then propagates unchanged: _push never raises
        elapsed = time.monotonic() - start
        url = _gateway_url()
        if url:
            labels = {"pipeline": pipeline, "step": step, "lineage_id": lineage_id}

            def fill(registry):
                _gauge(
                    registry,
                    "step_success",
                    "1 when the latest run of the step succeeded, 0 when it failed",
                    labels,
                    1.0 if succeeded else 0.0,
                )
                _gauge(registry, "step_duration_seconds", "Wall time of the latest run of the step", labels, elapsed)

            _push(url, STEP_JOB, {"pipeline": pipeline, "step": step}, fill)


def push_evaluation(
    lineage_id: str, metrics: Mapping[str, float], gate_passed: bool | None = None, pipeline: str = PIPELINE
) -> None:
    """Push the evaluation's metrics (when `metrics` is not empty; non-finite values skipped) and the gate's
    decision (when `gate_passed` is not None), each replacing the previous run's. A no-op without
    OMNI_PUSHGATEWAY_URL."""
    _require(lineage_id=lineage_id, pipeline=pipeline)
    for name, value in metrics.items():
        if not isinstance(value, numbers.Real):
            raise TypeError(
                f"pipeline_metrics: metric {name!r} is {value!r}, not a number. Fix: pass only the "
                f"numeric metrics (Evaluation.summary())."
            )
    url = _gateway_url()
    if not url:
        return

    def fill_metrics(registry):
        finite = {name: float(value) for name, value in metrics.items() if math.isfinite(value)}
        if finite:  # a Gauge without series would still be exposed as an empty family
            from prometheus_client import Gauge

            gauge = Gauge(
                f"{PREFIX}_evaluation_metric",
                "The latest evaluation's metrics, by contract name",
                ("pipeline", "lineage_id", "metric"),
                registry=registry,
            )
            for name, value in finite.items():
                gauge.labels(pipeline=pipeline, lineage_id=lineage_id, metric=name).set(value)

    def fill_gate(registry):
        _gauge(
            registry,
            "gate_passed",
            "1 when the latest gate decision passed, 0 when it failed",
            {"pipeline": pipeline, "lineage_id": lineage_id},
            1.0 if gate_passed else 0.0,
        )

    # One warning per call: when the gateway refused the metrics it would refuse the gate too.
    if metrics and not _push(url, EVALUATION_JOB, {"pipeline": pipeline}, fill_metrics):
        return
    if gate_passed is not None:
        _push(url, GATE_JOB, {"pipeline": pipeline}, fill_gate)
