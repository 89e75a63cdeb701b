"""The metrics window that verifies a rollout: after the move, watch the new version's own serving metrics for
`DeployConfig.window_s` and fail it as soon as its error ratio or its p95 latency crosses the chart's alert
thresholds.

    verdict = watch_window(ScrapeSource(config.metrics_url, "emotion_omni", 3), config)            # local
    verdict = watch_window(PrometheusSource(config.prometheus_url, "emotion_omni", 3,
                                            selector={"namespace": "serving"}), config)          # cluster

The series are the model's own (contracts METRIC_REQUESTS, METRIC_REPLY_SECONDS, labels model and version), so
only requests the new version answered count, never the old one's in flight. Every reading is cumulative; the
window is the increase since the first reading, with counter resets handled the way Prometheus' increase() does
(a value lower than the one before restarted from zero, so all of it is new).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

from components.contracts import METRIC_REPLY_SECONDS, METRIC_REQUESTS, OUTCOME_ERROR
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError

P95 = 0.95
_BUCKET = f"{METRIC_REPLY_SECONDS}_bucket"


class MetricsUnreachable(DeployError):
    """The serving metrics could not be read; a rollout whose metrics cannot be read is not verified."""


@dataclass
class WindowCounts:
    """Cumulative counts of one model version at one moment (since each server started)."""

    requests: float = 0.0  # every outcome: success, error, cancelled
    errors: float = 0.0  # outcome="error"
    buckets: dict[float, float] = field(default_factory=dict)  # reply-latency histogram {le: count}, +Inf included
    series: int = 0  # how many request series matched: 0 means nobody exports (or scrapes) this version

    def restarted_since(self, before: WindowCounts) -> bool:
        """Whether a counter went down: counters only grow, so the server restarted and counts from zero again."""
        return (
            self.requests < before.requests
            or self.errors < before.errors
            or any(self.buckets.get(le, 0.0) < n for le, n in before.buckets.items())
        )

    def minus(self, before: WindowCounts) -> WindowCounts:
        """The increase since `before`; after a restart all of this reading is new (Prometheus' increase())."""
        if self.restarted_since(before):
            return WindowCounts(self.requests, self.errors, dict(self.buckets), self.series)
        return WindowCounts(
            self.requests - before.requests,
            self.errors - before.errors,
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.series,
        )

    def plus(self, other: WindowCounts) -> WindowCounts:
        les = set(self.buckets) | set(other.buckets)
        return WindowCounts(
            self.requests + other.requests,
            self.errors + other.errors,
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in les},
            max(self.series, other.series),
        )


class MetricsSource(Protocol):
    def counts(self) -> WindowCounts: ...

    def describe(self) -> str: ...


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram {le: count} as Prometheus' histogram_quantile computes it: linear
    interpolation inside the bucket holding the rank, the first bucket starting at 0, and a rank in the +Inf bucket
    answered with the highest finite bound. None without observations (Prometheus: NaN)."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][0] != math.inf or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == math.inf:
                return lower
            if count == below:  # an empty bucket can only hold the rank when it is 0
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower  # unreachable: the +Inf bucket holds every observation


def _get(url: str, timeout_s: float, what: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as error:  # Prometheus explains a refused query in the body
        body = error.read().decode("utf-8", "replace")[:300]
        raise MetricsUnreachable(f"{what} {url} answered HTTP {error.code}: {body}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise MetricsUnreachable(f"{what} {url} did not answer ({reason})") from None


class ScrapeSource:
    """One tritonserver's /metrics read directly (a local `omni serve`)."""

    def __init__(self, metrics_url: str, model: str, version: int, timeout_s: float = 5.0):
        self.metrics_url, self.model, self.version, self.timeout_s = metrics_url, model, int(version), timeout_s

    def describe(self) -> str:
        return f"{self.metrics_url} ({self.model} v{self.version})"

    def counts(self) -> WindowCounts:
        text = _get(self.metrics_url, self.timeout_s, "Triton's metrics endpoint").decode("utf-8", "replace")
        return parse_counts(text, self.model, self.version)


def parse_counts(text: str, model: str, version: int) -> WindowCounts:
    """The counts of `model` version `version` in Prometheus text exposition (Triton's /metrics)."""
    counts = WindowCounts()
    wanted = {"model": model, "version": str(version)}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as error:
        raise MetricsUnreachable(f"the metrics text is not Prometheus' exposition format ({error})") from None
    for sample in samples:
        if any(sample.labels.get(k) != v for k, v in wanted.items()):
            continue
        if sample.name == METRIC_REQUESTS:
            counts.requests += sample.value
            counts.errors += sample.value if sample.labels.get("outcome") == OUTCOME_ERROR else 0.0
            counts.series += 1
        elif sample.name == _BUCKET:
            le = float(sample.labels["le"])
            counts.buckets[le] = counts.buckets.get(le, 0.0) + sample.value
    return counts


class PrometheusSource:
    """Prometheus' HTTP API (`/api/v1/query`) over every pod serving the version (a cluster).

    Each reading is an instant query of the cumulative series per pod (`sum by (instance, pod, ...)`), summed here:
    a pod whose counts drop restarted, and its new counts add to what it had served (increase()'s rule, per
    series); a pod that goes away (the rolling update retiring the old ReplicaSet, a pod evicted) keeps the counts
    last seen. A plain `sum(...)` would drop in both cases and read as a reset of everything; `sum(increase(
    ...[<elapsed>s]))` needs two scrapes of each pod inside the range (nothing for the first scrape interval, 30 s
    by default) and extrapolates to fractional request counts. One source watches one window: it keeps the pods
    it has seen.
    """

    def __init__(
        self, url: str, model: str, version: int, selector: dict[str, str] | None = None, timeout_s: float = 10.0
    ):
        self.url, self.model, self.version, self.timeout_s = url.rstrip("/"), model, int(version), timeout_s
        self.selector = {"model": model, "version": str(self.version), **(selector or {})}
        self._last: dict[tuple[str, str], WindowCounts] = {}  # per (instance, pod): the latest reading
        self._carried: dict[tuple[str, str], WindowCounts] = {}  # per pod: what it served before each restart

    def describe(self) -> str:
        return f"Prometheus {self.url} {{{self._matchers()}}}"

    def _matchers(self) -> str:
        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return ", ".join(f"{k}={quoted(v)}" for k, v in self.selector.items())

    def queries(self) -> dict[str, str]:
        """The PromQL this source sends, by what it reads."""
        return {
            "requests": f"sum by (instance, pod, outcome, reason) ({METRIC_REQUESTS}{{{self._matchers()}}})",
            "latency": f"sum by (instance, pod, le) ({_BUCKET}{{{self._matchers()}}})",
        }

    def _query(self, expr: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = json.loads(_get(url, self.timeout_s, "Prometheus"))
        except json.JSONDecodeError:
            raise MetricsUnreachable(f"Prometheus at {self.url} answered with something other than JSON") from None
        if body.get("status") != "success":
            raise MetricsUnreachable(f"Prometheus at {self.url} refused {expr!r}: {body.get('error', body)}")
        return body["data"]["result"]

    def counts(self) -> WindowCounts:
        queries = self.queries()
        now: dict[tuple[str, str], WindowCounts] = {}
        for row in self._query(queries["requests"]):
            labels, value = row["metric"], float(row["value"][1])
            pod = now.setdefault((labels.get("instance", ""), labels.get("pod", "")), WindowCounts())
            pod.requests += value
            pod.errors += value if labels.get("outcome") == OUTCOME_ERROR else 0.0
            pod.series += 1
        for row in self._query(queries["latency"]):
            labels, value = row["metric"], float(row["value"][1])
            pod = now.setdefault((labels.get("instance", ""), labels.get("pod", "")), WindowCounts())
            le = float(labels["le"])
            pod.buckets[le] = pod.buckets.get(le, 0.0) + value
        for key, reading in now.items():
            before = self._last.get(key)
            if before is not None and reading.restarted_since(before):
                self._carried[key] = self._carried.get(key, WindowCounts()).plus(before)
            self._last[key] = reading
        total = WindowCounts()
        for key, reading in self._last.items():
            total = total.plus(reading).plus(self._carried.get(key, WindowCounts()))
        total.series = sum(reading.series for reading in now.values())  # what is exported now, not what was
        return total


@dataclass
class WindowVerdict:
    passed: bool
    reason: str
    seconds: float  # how long the window was watched
    requests: int  # requests the version answered (any outcome) in the window
    errors: int
    error_ratio: float
    p95_latency_s: float | None  # None without requests
    source: str  # describe() of what was read
    polls: list[dict] = field(default_factory=list)  # each reading: at_s, requests, errors, p95_latency_s

    def to_dict(self) -> dict:
        return asdict(self)


def watch_window(
    source: MetricsSource,
    config: DeployConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WindowVerdict:
    """Read `source` now, then every `config.poll_s` until `config.window_s` has passed; fail at the first reading
    whose window error ratio exceeds `config.max_error_ratio` or whose window p95 latency exceeds
    `config.max_p95_latency_s`, or as soon as the source cannot be read."""
    start = clock()
    polls: list[dict] = []
    window = WindowCounts()

    def verdict(passed: bool, reason: str) -> WindowVerdict:
        ratio = window.errors / window.requests if window.requests else 0.0
        return WindowVerdict(
            passed=passed,
            reason=reason,
            seconds=round(clock() - start, 2),
            requests=round(window.requests),
            errors=round(window.errors),
            error_ratio=round(ratio, 4),
            p95_latency_s=_p95(window),
            source=source.describe(),
            polls=polls,
        )

    if config.window_s == 0:
        return verdict(True, "no metrics window (window_s = 0): only the smoke request verified it")
    try:
        previous = source.counts()
        while (elapsed := clock() - start) < config.window_s:
            sleep(min(config.poll_s, config.window_s - elapsed))
            reading = source.counts()
            window = window.plus(reading.minus(previous))
            previous = reading
            p95 = _p95(window)
            at = round(clock() - start, 2)
            polls.append(
                {"at_s": at, "requests": round(window.requests), "errors": round(window.errors), "p95_latency_s": p95}
            )
            if window.requests and window.errors / window.requests > config.max_error_ratio:
                return verdict(
                    False,
                    f"error ratio {window.errors:.0f}/{window.requests:.0f} = {window.errors / window.requests:.1%} "
                    f"after {at:g} s exceeds max_error_ratio {config.max_error_ratio:.1%}",
                )
            if p95 is not None and p95 > config.max_p95_latency_s:
                return verdict(
                    False,
                    f"p95 latency {p95:.2f} s after {at:g} s exceeds max_p95_latency_s {config.max_p95_latency_s:g} s",
                )
    except MetricsUnreachable as error:
        return verdict(False, f"{error}: a rollout whose metrics cannot be read is not verified. {_fix(source)}")
    if previous.series == 0:
        return verdict(
            False,
            f"no {METRIC_REQUESTS} series for {source.describe()}: nothing exports or scrapes this version's "
            f"metrics, so the rollout is not verified. {_fix(source)}",
        )
    seconds = f"{config.window_s:g} s"
    if not window.requests:
        return verdict(True, f"no requests in the {seconds} window: only the smoke request verified it")
    p95 = _p95(window)
    latency = "no successful replies to time" if p95 is None else f"p95 {p95:.2f} s <= {config.max_p95_latency_s:g} s"
    return verdict(
        True,
        f"{window.requests:.0f} requests in the {seconds} window: {window.errors:.0f} errors "
        f"({window.errors / window.requests:.1%} <= {config.max_error_ratio:.1%}), {latency}",
    )


def _p95(window: WindowCounts) -> float | None:
    p95 = histogram_quantile(P95, window.buckets)
    return None if p95 is None else round(p95, 4)


def _fix(source: MetricsSource) -> str:
    if isinstance(source, PrometheusSource):
        return (
            "Fix: check prometheus_url and that its ServiceMonitor scrapes the release's pods "
            f"(query {source.queries()['requests']} in the Prometheus UI)."
        )
    return "Fix: check metrics_url (Triton's --metrics-port, http://host:8002/metrics) and that the version is loaded."
