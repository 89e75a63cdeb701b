"""components/pipeline_metrics.py against a real Pushgateway (the Debian binary, started here on loopback): what
a step, the evaluation and the gate push is what Prometheus will scrape, with the names and labels the alerts in
infra/bootstrap/06-monitoring/prometheusrule-platform.yaml select; off means no request at all; a broken gateway
costs a warning, never the step."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components import pipeline_metrics
from components.pipeline_metrics import CLUSTER_URL, URL_ENV, push_evaluation, step_metrics

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A Pushgateway on 127.0.0.1 for this module; yields its URL. Tests keep apart by their `pipeline` label."""
    if not shutil.which(PUSHGATEWAY):
        message = f"{PUSHGATEWAY} is not installed: run `make setup` (infra/setup.sh installs prometheus-pushgateway)"
        if os.environ.get("CI"):  # CI runs make setup, so a missing binary is a broken setup
            pytest.fail(message)
        pytest.skip(message)
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    # Debian's build defaults --persistence.file to /var/lib/prometheus/pushgateway.data: every test gateway would
    # load the groups of earlier runs (and leave its own), so keep this one in memory.
    command = [PUSHGATEWAY, f"--web.listen-address={url.removeprefix('http://')}", "--persistence.file="]
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:  # not listening yet
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"the Pushgateway did not become ready; log: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture()
def pipeline(request) -> str:
    """A pipeline label of this test's own, so the module's shared gateway holds nothing of other tests in it."""
    return f"test-{request.node.name}"


def scraped(url: str, pipeline: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of the omni_pipeline_* series on the gateway's /metrics for `pipeline`."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("omni_pipeline_") and sample.labels.get("pipeline") == pipeline
    }


def labels(**pairs: str) -> frozenset:
    return frozenset({"instance": "", **pairs}.items())  # the gateway adds instance="" to groups without one


def test_steps_evaluation_and_gate_are_scraped_with_their_labels(gateway, pipeline, monkeypatch, capsys):
    monkeypatch.setenv(URL_ENV, gateway)
    with step_metrics("train", "run-1", pipeline=pipeline):
        time.sleep(0.05)
    error = RuntimeError("export broke")
    with pytest.raises(RuntimeError) as raised, step_metrics("export", "run-1", pipeline=pipeline):
        raise error
    assert raised.value is error, "the step's own exception, unchanged"
    push_evaluation(
        "run-1",
        {"emotion_accuracy": 0.75, "mcd_db": 6.5, "dnsmos_ovrl": math.nan, "speech_real_time_factor": math.inf},
        gate_passed=False,
        pipeline=pipeline,
    )

    found = scraped(gateway, pipeline)
    step = {"job": "omni_pipeline_step", "pipeline": pipeline, "lineage_id": "run-1"}
    train_duration = found.pop(("omni_pipeline_step_duration_seconds", labels(**step, step="train")))
    assert 0.05 <= train_duration < 5
    assert 0 <= found.pop(("omni_pipeline_step_duration_seconds", labels(**step, step="export"))) < 5
    evaluation = {"job": "omni_pipeline_evaluation", "pipeline": pipeline, "lineage_id": "run-1"}
    # Exactly these: the non-finite metrics are skipped, not pushed as NaN.
    assert found == {
        ("omni_pipeline_step_success", labels(**step, step="train")): 1.0,
        ("omni_pipeline_step_success", labels(**step, step="export")): 0.0,
        ("omni_pipeline_evaluation_metric", labels(**evaluation, metric="emotion_accuracy")): 0.75,
        ("omni_pipeline_evaluation_metric", labels(**evaluation, metric="mcd_db")): 6.5,
        ("omni_pipeline_gate_passed", labels(job="omni_pipeline_gate", pipeline=pipeline, lineage_id="run-1")): 0.0,
    }
    assert capsys.readouterr().err == ""


def test_a_later_run_replaces_the_earlier_one(gateway, pipeline, monkeypatch):
    """One group per step, not per run: the gateway keeps only the latest run, so groups never accumulate."""
    monkeypatch.setenv(URL_ENV, gateway)
    with pytest.raises(ValueError), step_metrics("train", "run-1", pipeline=pipeline):
        raise ValueError("diverged")
    push_evaluation("run-1", {"emotion_accuracy": 0.5, "mcd_db": 7.0}, gate_passed=False, pipeline=pipeline)
    with step_metrics("train", "run-2", pipeline=pipeline):
        pass
    push_evaluation("run-2", {"emotion_accuracy": 0.9}, pipeline=pipeline)  # the gate has not decided yet

    found = scraped(gateway, pipeline)
    assert {(name, dict(key)["lineage_id"]) for name, key in found} == {
        ("omni_pipeline_step_success", "run-2"),
        ("omni_pipeline_step_duration_seconds", "run-2"),
        ("omni_pipeline_evaluation_metric", "run-2"),
        ("omni_pipeline_gate_passed", "run-1"),  # the latest decision stands until the next gate pushes its own
    }
    assert [dict(key)["metric"] for name, key in found if name == "omni_pipeline_evaluation_metric"] == [
        "emotion_accuracy"
    ], "run-1's mcd_db went with its group"

    push_evaluation("run-2", {}, gate_passed=True, pipeline=pipeline)
    found = scraped(gateway, pipeline)
    gate = {
        dict(key)["lineage_id"]: value for (name, key), value in found.items() if name == "omni_pipeline_gate_passed"
    }
    assert gate == {"run-2": 1.0}
    assert (
        "omni_pipeline_evaluation_metric",
        labels(job="omni_pipeline_evaluation", pipeline=pipeline, lineage_id="run-2", metric="emotion_accuracy"),
    ) in found


@pytest.fixture()
def no_network(monkeypatch):
    """Fail the test on any outgoing TCP connection; returns the list of attempted addresses."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"unexpected connection to {address}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("value", [None, "", "  "])
def test_off_without_a_url_sends_nothing_and_says_nothing(value, monkeypatch, no_network, capsys):
    if value is None:
        monkeypatch.delenv(URL_ENV, raising=False)
    else:
        monkeypatch.setenv(URL_ENV, value)
    with step_metrics("train", "run-1"):
        pass
    with pytest.raises(KeyError), step_metrics("export", "run-1"):
        raise KeyError("missing")
    push_evaluation("run-1", {"emotion_accuracy": 0.5}, gate_passed=True)
    assert no_network == []
    assert capsys.readouterr() == ("", "")


def test_unreachable_gateway_warns_once_per_push_and_the_step_is_unaffected(monkeypatch, capsys):
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    results = []
    with step_metrics("train", "run-1"):
        results.append("trained")
    error = OSError("disk full")
    with pytest.raises(OSError) as raised, step_metrics("export", "run-1"):
        raise error
    assert raised.value is error
    assert results == ["trained"]
    push_evaluation("run-1", {"emotion_accuracy": 0.5}, gate_passed=True)  # two groups, one warning

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        assert line.startswith("warning: could not push pipeline metrics")
        assert URL_ENV in line and "Connection refused" in line and "unset OMNI_PUSHGATEWAY_URL" in line


def test_refusing_gateway_warns_with_its_answer(gateway, monkeypatch, capsys):
    # The real gateway answers 404 under a path prefix it does not serve.
    monkeypatch.setenv(URL_ENV, f"{gateway}/no-such-prefix")
    with step_metrics("train", "run-1"):
        pass
    (line,) = capsys.readouterr().err.splitlines()
    assert URL_ENV in line and "404" in line


def test_hung_gateway_costs_at_most_the_timeout(monkeypatch, capsys):
    """A gateway that accepts the connection and never answers must not hold the finished step."""
    monkeypatch.setattr(pipeline_metrics, "TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or replies
        monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with step_metrics("train", "run-1"):
            pass
        assert time.monotonic() - start < 3
    (line,) = capsys.readouterr().err.splitlines()
    assert URL_ENV in line and "timed out" in line


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://gateway:9091",
        "http://:9091",
        "http://gateway:port",
        "prometheus-pushgateway.monitoring.svc:9091",
    ],
)
def test_malformed_url_warns_and_sends_nothing(url, monkeypatch, no_network, capsys):
    monkeypatch.setenv(URL_ENV, url)
    with step_metrics("train", "run-1"):
        pass
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: {URL_ENV}={url!r} is not an http(s) URL with a host")
    assert CLUSTER_URL in line, "the fix names the in-cluster URL"
    assert no_network == []


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: step_metrics("", "run-1").__enter__(), "step must be a non-empty string"),
        (lambda: step_metrics("train", "").__enter__(), "lineage_id must be a non-empty string"),
        (lambda: push_evaluation("", {}), "lineage_id must be a non-empty string"),
        (lambda: push_evaluation("run-1", {"emotion_accuracy": "high"}), "'emotion_accuracy' is 'high', not a number"),
    ],
)
def test_bad_arguments_fail_at_the_call_even_when_off(call, error, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises((ValueError, TypeError), match=error):
        call()
