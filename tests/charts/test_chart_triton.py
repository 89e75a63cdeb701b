"""The Deployment's tritonserver args, exactly as the chart renders them, run the real tritonserver 2.51 (the
nvidia-pytriton wheel's): the model loads in explicit mode, the probe endpoints answer, the repository API wants
the header, every nv_* series the alerts, dashboard and adapter rule use is exported, and the `helm test` pod's
script passes against it.

Only what a cluster provides differently is swapped: the repository (a local directory laid out like
<base>/<model.version>, instead of s3://), the header value (kubelet expands $(VAR) from the Secret), and the
ports (free loopback ports instead of 8000-8002 on the pod's own IP).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from serving.launcher import find_tritonserver, prepare_backend_dir, server_env
from tests.charts.rendering import container, render
from tests.serving.fake_models import ECHO_MODEL, write_repository

pytestmark = pytest.mark.triton

ADMIN_VALUE = "test-admin-value"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _status(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(rendered chart, http base URL, metrics URL) of a tritonserver started with the chart's args."""
    try:
        binary = find_tritonserver()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    rendered = render({"model": {"streamName": ""}})  # the echo repository has no streaming twin
    work = tmp_path_factory.mktemp("chart-triton")
    version = rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"][
        "empathy-omni.github.io/model-version"
    ]
    repo = write_repository(work / "repository" / version, ECHO_MODEL)
    http, grpc, metrics = _free_ports(3)
    local = {"model-repository": str(repo), "http-port": http, "grpc-port": grpc, "metrics-port": metrics}
    args = []
    for arg in container(rendered)["args"]:
        name = arg[2:].split("=", 1)[0]
        if name == "model-repository":
            assert arg.endswith(f"/{version}"), arg  # the chart serves <base>/<model.version>
        args.append(
            f"--{name}={local[name]}" if name in local else arg.replace("$(TRITON_RESTRICTED_API_VALUE)", ADMIN_VALUE)
        )
    args += [
        f"--backend-directory={prepare_backend_dir(work)}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
    ]
    with open(work / "tritonserver.log", "wb") as log:
        process = subprocess.Popen(
            [str(binary), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(),
            cwd=work,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 120
        while _status(base + "/v2/health/ready") != 200:
            assert process.poll() is None, (work / "tritonserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "tritonserver was not ready within 120 s"
            time.sleep(0.1)
        yield rendered, base, f"http://127.0.0.1:{metrics}/metrics", process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_probe_endpoints_answer(served):
    rendered, base, _, _ = served
    c = container(rendered)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert _status(base + c[probe]["httpGet"]["path"]) == 200, probe


def test_repository_api_needs_the_header_and_inference_does_not(served):
    rendered, base, _, _ = served
    restricted = next(a for a in container(rendered)["args"] if a.startswith("--http-restricted-api="))
    header = restricted.split(":", 1)[1].split("=", 1)[0]
    assert _status(base + "/v2/repository/index", b"{}") == 403
    assert _status(base + "/v2/repository/index", b"{}", {header: ADMIN_VALUE}) == 200
    assert _status(base + "/v2/logging") == 403
    assert _status(base + "/v2/models/emotion_omni/ready") == 200


def test_every_series_the_monitoring_uses_is_exported(served):
    from serving.client import EmotionOmniClient

    rendered, base, metrics_url, _ = served
    with EmotionOmniClient(base.removeprefix("http://")) as client:
        client.chat(b"RIFF-not-really-a-wav")
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        exported = set(re.findall(r"^(nv_[a-z_]+)", response.read().decode(), re.M))
    used = set(re.findall(r"\b(nv_[a-z_]+)", "".join(rendered.manifests.values())))
    assert used and used <= exported, f"not exported by Triton: {used - exported}"


def test_helm_test_pod_script_passes(served):
    rendered, base, _, _ = served
    script = rendered.one("Pod")["spec"]["containers"][0]["args"][0]
    script = re.sub(r'BASE = "[^"]+"', f'BASE = "{base}"', script)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("(want") == 3


def test_sigterm_drains_within_the_grace_period(served):
    """Last in this module: it stops the server."""
    rendered, _, _, process = served
    grace = rendered.one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=grace) == 0
    assert time.monotonic() - start < grace
