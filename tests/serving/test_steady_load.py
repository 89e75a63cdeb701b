"""SteadyLoad against a real tritonserver serving the tiny emotion_omni model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from components.contracts import SAMPLE_RATE
from components.errors import ConfigError
from serving.launcher import TritonConfig, TritonServer
from serving.steady_load import LoadReport, RequestRecord, SteadyLoad
from tests.conftest import one_instance_repository

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def repo(tiny_model_dir, tmp_path_factory):
    return one_instance_repository(tiny_model_dir, tmp_path_factory.mktemp("load_repo"), version=3)


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    config = TritonConfig(
        model_repository=str(repo), startup_timeout_s=300, work_dir=str(tmp_path_factory.mktemp("load_triton"))
    )
    with TritonServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def wav() -> bytes:
    from components.audio.io import encode_wav

    t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE  # (T,) 0.5 s: short, so the tiny model answers fast
    return encode_wav((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))


def _run(load: SteadyLoad, until, poll_s: float = 0.05) -> LoadReport:
    """Run `load` until `until(records so far)` holds; polling, not sleeping a fixed time, keeps the test
    independent of how fast this machine answers."""
    with load:
        while not until(load.snapshot().records):
            time.sleep(poll_s)
    return load.report


def _max_overlap(records: list[RequestRecord]) -> int:
    """The most requests in flight at one moment, from the records' [start, start + latency) intervals."""
    events = sorted([(r.start_s, 1) for r in records] + [(r.start_s + r.latency_s, -1) for r in records])
    depth = peak = 0
    for _, step in events:  # at a tie the end (-1) sorts first: a slot handed over is not an overlap
        depth += step
        peak = max(peak, depth)
    return peak


def test_every_request_is_counted_with_the_version_that_answered(server, wav):
    report = _run(SteadyLoad(server.http_url, wav, rate_per_s=4.0, max_in_flight=2), lambda r: len(r) >= 6)
    summary = report.summary(slow_s=float("inf"))
    assert summary["requests"] == len(report.records) >= 6
    assert summary["failed"] == 0 and summary["errors"] == [] and summary["slow"] == 0
    assert summary["versions"] == {"3": summary["requests"]}
    assert 0 < summary["p50_s"] <= summary["p95_s"] <= summary["max_s"]
    assert report.summary(slow_s=0.0)["slow"] == summary["requests"]  # every answer took some time
    starts = [r.start_s for r in report.records]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] < report.seconds

    mid = starts[len(starts) // 2]
    before, after = report.between(0, mid), report.between(mid, report.seconds + 1)
    assert before.records + after.records == report.records  # the phases split the load, nothing lost or doubled
    assert before.delayed + after.delayed == report.delayed
    assert before.seconds == pytest.approx(mid)


def test_starts_never_exceed_max_in_flight_and_waiting_ones_are_counted_delayed(server, wav):
    # 1000 starts a second against a model that takes far longer than 1 ms: every start has to wait for a slot.
    load = SteadyLoad(server.http_url, wav, rate_per_s=1000.0, max_in_flight=2)
    report = _run(load, lambda r: len(r) >= 8)
    assert _max_overlap(report.records) == 2
    assert report.delayed > 0 and report.delayed == sum(r.delayed for r in report.records)
    assert all(r.wait_s > 0 for r in report.records if r.delayed)  # sent later than scheduled, by this much
    assert report.summary(slow_s=1.0)["max_wait_s"] == round(max(r.wait_s for r in report.records), 4)
    assert report.summary(slow_s=1.0)["delayed"] == report.delayed
    assert report.summary(slow_s=1.0)["failed"] == 0


def test_a_server_that_goes_away_mid_load_is_counted_as_failures_not_raised(repo, wav, tmp_path):
    config = TritonConfig(
        model_repository=str(repo), startup_timeout_s=300, stop_timeout_s=2, work_dir=str(tmp_path / "triton")
    )
    server = TritonServer(config).start()
    try:
        with SteadyLoad(server.http_url, wav, rate_per_s=10.0, max_in_flight=2, timeout_s=10) as load:
            while not any(r.ok for r in load.snapshot().records):
                time.sleep(0.05)
            server.stop()
            while not any(not r.ok for r in load.snapshot().records):
                time.sleep(0.05)
    finally:
        server.stop()
    summary = load.report.summary(slow_s=10.0)
    assert summary["failed"] > 0 and summary["requests"] > summary["failed"]
    assert summary["versions"] == {"3": summary["requests"] - summary["failed"]}
    assert 1 <= len(summary["errors"]) <= 5 and all(": " in e for e in summary["errors"])


@pytest.mark.parametrize(
    "kwargs, key",
    [({"rate_per_s": 0}, "rate_per_s"), ({"max_in_flight": 0}, "max_in_flight"), ({"timeout_s": -1}, "timeout_s")],
)
def test_bad_settings_are_refused_with_the_setting_named(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        SteadyLoad("127.0.0.1:1", b"", **kwargs)


def test_stop_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="before start"):
        SteadyLoad("127.0.0.1:1", b"").stop()
