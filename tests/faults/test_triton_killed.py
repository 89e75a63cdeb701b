"""tritonserver killed under a running `omni serve` (an OOM kill, a `kill -9`): the command exits non-zero with one
clean line naming the server's log, and takes the python-backend stubs and their shared memory down with it.

The real `omni` entry point in a subprocess, serving the echo model of tests/serving/fake_models.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.serving.fake_models import ECHO_MODEL, write_repository

pytestmark = [pytest.mark.faults, pytest.mark.triton]

_START_TIMEOUT_S = 180  # the CLI's imports plus tritonserver's start, on two busy cores


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_omni_serve_exits_non_zero_naming_the_log_when_tritonserver_is_killed(tmp_path):
    repo = write_repository(tmp_path / "repo", ECHO_MODEL)
    omni = Path(sys.executable).parent / "omni"
    ports = ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    process = subprocess.Popen(
        [str(omni), "serve", "--model-repository", str(repo), *ports],
        env={**os.environ, "OMNI_DATA_DIR": str(tmp_path / "data")},  # its work dir: data/serve/triton
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(_START_TIMEOUT_S, process.kill)  # a start that hangs fails the test, not the suite
    watchdog.start()
    try:
        log = next((line.split()[-1] for line in process.stdout if line.strip().startswith("log ")), None)
    finally:
        watchdog.cancel()
    assert log is not None, f"omni serve did not report a running server:\n{process.stderr.read()[-3000:]}"
    (server,) = [pid for pid in _children(process.pid) if Path(f"/proc/{pid}/comm").read_text() == "tritonserver\n"]
    stubs = _children(server)
    assert stubs, "the python backend runs the model in stub processes"

    os.kill(server, signal.SIGKILL)

    code = process.wait(timeout=30)
    stderr = process.stderr.read()
    assert code == 2, stderr  # a reported failure (OmniError), not a crash with a traceback
    (line,) = stderr.strip().splitlines()  # one clean line, no traceback
    assert line == f"omni: error: tritonserver was killed by SIGKILL; see {log}"
    assert Path(log).is_file() and "Started HTTPService" in Path(log).read_text()
    assert not [pid for pid in stubs if _alive(pid)]
    assert not list(Path("/dev/shm").glob(f"omni_{process.pid}_*"))  # the stubs' shared-memory regions
