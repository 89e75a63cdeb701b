"""The metrics window: its decisions on scripted readings (fake clock), PrometheusSource against a fake Prometheus
HTTP API, and both sources on a real tritonserver (and a real Prometheus scraping it, where Debian's is installed).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from components.contracts import METRIC_REPLY_SECONDS, METRIC_REQUESTS, REPLY_SECONDS_BUCKETS, SAMPLE_RATE
from components.deploy.config import DeployConfig
from components.deploy.metrics_window import (
    MetricsUnreachable,
    PrometheusSource,
    ScrapeSource,
    WindowCounts,
    histogram_quantile,
    watch_window,
)
from serving.launcher import free_ports
from tests.fake_prometheus import per_pod_answers, serve_prometheus

MODEL = "emotion_omni"
CORRUPT_WAV = b"RIFF\x24\x00\x00\x00WAVEfmt garbage"


# --- scripted readings on a fake clock -------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedSource:
    """Hands out the readings in order; an exception in the script is raised when its turn comes."""

    def __init__(self, *readings):
        self.readings = list(readings)
        self.reads = 0

    def counts(self) -> WindowCounts:
        item = self.readings[self.reads]
        self.reads += 1
        if isinstance(item, Exception):
            raise item
        return item

    def describe(self) -> str:
        return "scripted"


def reading(requests: int, errors: int = 0, slow: int = 0) -> WindowCounts:
    """Cumulative counts: the successful replies took 0.2 s, but `slow` of them took 3 s."""
    fast = requests - errors - slow
    buckets = {le: fast * (le >= 0.2) + slow * (le >= 3.0) for le in (*REPLY_SECONDS_BUCKETS, math.inf)}
    return WindowCounts(float(requests), float(errors), {le: float(n) for le, n in buckets.items()}, series=3)


def watch(source, **settings):
    clock = FakeClock()
    config = DeployConfig(**{"window_s": 20.0, "poll_s": 5.0, **settings})  # 4 polls after the first reading
    return watch_window(source, config, sleep=clock.sleep, clock=clock)


def test_a_clean_window_passes_with_its_counts():
    verdict = watch(ScriptedSource(reading(100), reading(110), reading(130, 1), reading(150, 1), reading(160, 1)))
    assert verdict.passed and (verdict.requests, verdict.errors) == (60, 1)
    assert verdict.error_ratio == pytest.approx(1 / 60, abs=1e-4) and verdict.p95_latency_s < 0.25
    assert [p["at_s"] for p in verdict.polls] == [5, 10, 15, 20] and verdict.seconds == 20
    assert "60 requests in the 20 s window: 1 errors" in verdict.reason
    assert json.loads(json.dumps(verdict.to_dict()))["source"] == "scripted"


def test_errors_over_the_ratio_fail_at_the_poll_that_sees_them():
    source = ScriptedSource(reading(100, 50), reading(110, 50), reading(120, 52), reading(200, 52), reading(300, 52))
    verdict = watch(source, max_error_ratio=0.05)
    # The 50 errors before the window belong to whatever served before: only 2 of the window's 20 count.
    assert not verdict.passed and source.reads == 3 and len(verdict.polls) == 2
    assert (verdict.requests, verdict.errors, verdict.error_ratio) == (20, 2, 0.1)
    assert "error ratio 2/20 = 10.0% after 10 s exceeds max_error_ratio 5.0%" in verdict.reason
    assert watch(
        ScriptedSource(reading(0), reading(10), reading(20), reading(30), reading(40, 1)), max_error_ratio=0.05
    ).passed


def test_a_slow_p95_fails_and_a_fast_one_passes():
    slow = watch(ScriptedSource(reading(0), reading(20, slow=2), *[reading(20, slow=2)] * 3))
    assert not slow.passed and slow.p95_latency_s == pytest.approx(3.0)  # 18 at 0.2 s, 2 at 3 s: rank 19 in (2, 4]
    assert "p95 latency 3.00 s after 5 s exceeds max_p95_latency_s 2 s" in slow.reason
    fast = watch(ScriptedSource(reading(0), reading(20), reading(40, slow=1), *[reading(40, slow=1)] * 2))
    assert fast.passed and fast.p95_latency_s == pytest.approx(0.1 + 0.15 * 38 / 39, abs=1e-4)
    assert watch(ScriptedSource(reading(0), *[reading(20, slow=2)] * 4), max_p95_latency_s=5.0).passed


def test_no_requests_pass_and_say_only_the_smoke_request_verified_it():
    verdict = watch(ScriptedSource(*[reading(7)] * 5), window_s=60.0, poll_s=15.0)
    assert verdict.passed and verdict.requests == 0 and verdict.p95_latency_s is None and verdict.error_ratio == 0
    assert verdict.reason == "no requests in the 60 s window: only the smoke request verified it"


def test_no_window_reads_nothing():
    source = ScriptedSource()
    verdict = watch(source, window_s=0.0)
    assert verdict.passed and source.reads == 0 and "window_s = 0" in verdict.reason


def test_a_counter_reset_counts_what_came_after_it():
    # 10 -> 12: 2 new; the server restarts and reads 3: all 3 new; then 2 more. As Prometheus' increase().
    verdict = watch(ScriptedSource(reading(10, 1), reading(12, 1), reading(3, 0), reading(5, 0), reading(5, 0)))
    assert verdict.passed and (verdict.requests, verdict.errors) == (7, 0)
    assert [p["requests"] for p in verdict.polls] == [2, 5, 7, 7]


def test_a_version_nobody_exports_is_not_verified():
    empty = WindowCounts()
    verdict = watch(ScriptedSource(*[empty] * 5))
    assert not verdict.passed and f"no {METRIC_REQUESTS} series for scripted" in verdict.reason


def test_a_source_that_stops_answering_fails_the_window_naming_it():
    broken = MetricsUnreachable("Prometheus http://prom:9090/api/v1/query?query=x did not answer (timed out)")
    verdict = watch(ScriptedSource(reading(0), reading(5), broken))
    assert not verdict.passed and verdict.requests == 5 and len(verdict.polls) == 1
    assert "http://prom:9090" in verdict.reason and "not verified" in verdict.reason


def test_an_unreachable_metrics_url_fails_at_once_naming_the_url():
    (port,) = free_ports("127.0.0.1", 1)  # nothing listens there
    url = f"http://127.0.0.1:{port}/metrics"
    verdict = watch(ScrapeSource(url, MODEL, 1, timeout_s=2))
    assert not verdict.passed and url in verdict.reason and "Fix: check metrics_url" in verdict.reason
    assert verdict.polls == [] and verdict.source == f"{url} ({MODEL} v1)"


def test_histogram_quantile_interpolates_as_prometheus_does():
    buckets = {0.1: 0.0, 0.5: 10.0, 1.0: 20.0, math.inf: 20.0}
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.95)  # rank 19: 0.5 + 0.5 * 9/10
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.3)  # rank 5: 0.1 + 0.4 * 5/10
    assert histogram_quantile(0.95, {1.0: 1.0, 2.0: 1.0, math.inf: 10.0}) == 2.0  # in +Inf: the top finite bound
    assert histogram_quantile(0.95, {1.0: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.95, {1.0: 5.0}) is None  # no +Inf bucket: not a histogram (Prometheus: NaN)


# --- PrometheusSource against a fake Prometheus HTTP API --------------------------------------------------------


@pytest.fixture()
def fake_prometheus():
    with serve_prometheus() as fake:
        yield fake


def test_prometheus_source_queries_the_version_per_pod(fake_prometheus):
    source = PrometheusSource(fake_prometheus.url, MODEL, 3, selector={"namespace": "serving", "service": 'a"b'})
    fake_prometheus.answers = per_pod_answers(a=(10, 1), b=(5, 0))
    counts = source.counts()
    assert (counts.requests, counts.errors, counts.series) == (15, 1, 4)
    assert counts.buckets[math.inf] == 14 and counts.buckets[0.1] == 0
    matchers = f'model="{MODEL}", version="3", namespace="serving", service="a\\"b"'
    assert fake_prometheus.queries == [
        f"sum by (instance, pod, outcome, reason) ({METRIC_REQUESTS}{{{matchers}}})",
        f"sum by (instance, pod, le) ({METRIC_REPLY_SECONDS}_bucket{{{matchers}}})",
    ]
    assert source.describe() == f"Prometheus {fake_prometheus.url} {{{matchers}}}"


def test_prometheus_source_survives_a_pod_restart_and_a_pod_going_away(fake_prometheus):
    source = PrometheusSource(fake_prometheus.url, MODEL, 3)
    readings = [
        per_pod_answers(a=(10, 0), b=(20, 0)),
        per_pod_answers(a=(12, 0), b=(25, 1)),
        per_pod_answers(a=(3, 1), b=(26, 1)),
        per_pod_answers(a=(4, 1)),
    ]
    totals = []
    for answer in readings:  # a restarts (12 -> 3), then b goes away: neither makes the total drop
        fake_prometheus.answers = answer
        counts = source.counts()
        totals.append((counts.requests, counts.errors, counts.buckets[math.inf]))
    assert totals == [(30, 0, 30), (37, 1, 36), (12 + 3 + 26, 2, 12 + 2 + 25), (12 + 4 + 26, 2, 12 + 3 + 25)]
    assert counts.series == 2  # only a exports now


def test_a_prometheus_that_refuses_the_query_fails_the_window(fake_prometheus):
    fake_prometheus.answers = lambda query: {"status": "error", "errorType": "bad_data", "error": "parse error"}
    with pytest.raises(MetricsUnreachable, match="parse error"):
        PrometheusSource(fake_prometheus.url, MODEL, 3).counts()
    verdict = watch(PrometheusSource(fake_prometheus.url, MODEL, 3))
    assert not verdict.passed and fake_prometheus.url in verdict.reason and "ServiceMonitor" in verdict.reason


# --- a real tritonserver (and a real Prometheus) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def triton(tiny_model_dir, tmp_path_factory):
    from serving.launcher import TritonConfig, TritonServer
    from tests.conftest import one_instance_repository

    repo = one_instance_repository(tiny_model_dir, tmp_path_factory.mktemp("window_repo"))
    config = TritonConfig(
        model_repository=str(repo), startup_timeout_s=300, work_dir=str(tmp_path_factory.mktemp("window_triton"))
    )
    with TritonServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def chirp_wav() -> bytes:
    from components.audio.io import encode_wav

    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE  # (T,) 1.5 s
    return encode_wav((0.3 * np.sin(2 * np.pi * (200 + 200 * t) * t)).astype(np.float32))


def send(server, payload: bytes) -> bool:
    """True when the server answered, False when it refused the request (what the metrics must count as an error)."""
    from serving.client import EmotionOmniClient, ServingError

    with EmotionOmniClient(server.http_url, timeout_s=120) as client:
        try:
            client.chat(payload)
        except ServingError:
            return False
    return True


@pytest.mark.triton
def test_scrape_source_reads_a_real_triton(triton, chirp_wav):
    source = ScrapeSource(triton.metrics_url, MODEL, 1)
    before = source.counts()
    assert [send(triton, payload) for payload in (chirp_wav, CORRUPT_WAV, chirp_wav)] == [True, False, True]
    moved = source.counts().minus(before)
    assert (moved.requests, moved.errors) == (3, 1)
    assert moved.buckets[math.inf] == 2 and sorted(moved.buckets) == [*REPLY_SECONDS_BUCKETS, math.inf]
    assert before.series >= 3  # success and both error reasons exist from the load on, at 0
    assert ScrapeSource(triton.metrics_url, MODEL, 2).counts() == WindowCounts()  # a version that is not loaded


@pytest.mark.triton
def test_the_window_on_a_real_triton_fails_on_errors_and_passes_on_replies(triton, chirp_wav):
    def window(payload):
        clock = FakeClock()

        def sleep(seconds):
            send(triton, payload)  # traffic while the window watches, one request per poll
            clock.sleep(seconds)

        config = DeployConfig(window_s=2.0, poll_s=1.0, max_error_ratio=0.05, max_p95_latency_s=30.0)
        return watch_window(ScrapeSource(triton.metrics_url, MODEL, 1), config, sleep=sleep, clock=clock)

    failed = window(CORRUPT_WAV)
    assert not failed.passed and (failed.requests, failed.errors) == (1, 1) and "error ratio 1/1" in failed.reason
    passed = window(chirp_wav)
    assert passed.passed and (passed.requests, passed.errors) == (2, 0), passed.reason
    assert 0 < passed.p95_latency_s <= 30.0 and passed.source == f"{triton.metrics_url} ({MODEL} v1)"


@pytest.mark.triton
def test_prometheus_source_on_a_real_prometheus_scraping_triton(triton, chirp_wav, tmp_path):
    from serving.local_prometheus import NAMESPACE, LocalPrometheus

    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    for payload in (chirp_wav, CORRUPT_WAV):
        send(triton, payload)
    direct = ScrapeSource(triton.metrics_url, MODEL, 1).counts()
    with LocalPrometheus(triton.metrics_url, tmp_path / "prom", interval_s=1) as prometheus:
        source = PrometheusSource(prometheus.url, MODEL, 1, selector={"namespace": NAMESPACE})
        deadline = time.monotonic() + 30
        while (counts := source.counts()).requests < direct.requests and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (counts.requests, counts.errors, counts.buckets) == (direct.requests, direct.errors, direct.buckets)
        assert counts.series == direct.series
        # Our p95 is Prometheus' own histogram_quantile over the same buckets.
        expr = f'histogram_quantile(0.95, sum by (le) ({METRIC_REPLY_SECONDS}_bucket{{model="{MODEL}"}}))'
        answer = urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        ((_, theirs),) = [(row["metric"], float(row["value"][1])) for row in json.load(answer)["data"]["result"]]
        assert histogram_quantile(0.95, counts.buckets) == pytest.approx(theirs)
        assert PrometheusSource(prometheus.url, MODEL, 1, selector={"namespace": "elsewhere"}).counts().series == 0
