"""The launcher and the client against a real tritonserver serving models the tests write themselves."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components.contracts import MAX_AUDIO_BYTES, RESPONSE_EMOTIONS, USER_EMOTIONS
from serving.client import EmotionOmniClient, ServingError
from serving.launcher import TritonConfig, TritonServer, TritonStartupError
from tests.serving.fake_models import ECHO_MODEL, FAILING_MODEL, SLOW_MODEL, write_repository

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def echo_repo(tmp_path_factory) -> Path:
    return write_repository(tmp_path_factory.mktemp("echo_repo"), ECHO_MODEL)


@pytest.fixture(scope="module")
def echo_server(echo_repo, tmp_path_factory):
    config = TritonConfig(model_repository=str(echo_repo), work_dir=str(tmp_path_factory.mktemp("triton")))
    start = time.perf_counter()
    with TritonServer(config) as server:
        server.start_to_ready_s = time.perf_counter() - start
        yield server


def test_serves_the_model_and_the_stub_sees_this_venv(echo_server):
    assert echo_server.start_to_ready_s < 60
    with EmotionOmniClient(echo_server.http_url) as client:
        assert client.is_ready()
        reply = client.chat(b"RIFF-not-really-a-wav")
    facts = json.loads(reply.text)
    assert facts["n_bytes"] == len(b"RIFF-not-really-a-wav")
    assert facts["numpy"].startswith("1.")  # the stub must never see numpy 2 (empty outputs)
    assert facts["prefix"] == sys.prefix  # the venv's interpreter, not the system one
    assert reply.response_emotion in RESPONSE_EMOTIONS and reply.user_emotion in USER_EMOTIONS
    assert reply.emotion_vector.dtype.name == "float32" and reply.emotion_vector.tolist() == [0, 1, 2, 3]
    assert reply.audio_wav == b"RIFF-not-really-a-wav"
    assert reply.latency_s > 0


def test_free_ports_are_distinct_and_bound_to_loopback(echo_server):
    ports = {
        url.rsplit(":", 1)[1].split("/")[0]
        for url in (echo_server.http_url, echo_server.grpc_url, echo_server.metrics_url)
    }
    assert len(ports) == 3 and "0" not in ports
    assert echo_server.http_url.startswith("127.0.0.1:")
    import urllib.request

    with urllib.request.urlopen(echo_server.metrics_url, timeout=5) as response:
        assert b"nv_inference_count" in response.read()


def test_chat_file_and_a_payload_at_the_size_limit(echo_server, tmp_path):
    path = tmp_path / "big.wav"
    path.write_bytes(os.urandom(MAX_AUDIO_BYTES))  # exercises the python backend's shared-memory growth
    with EmotionOmniClient(echo_server.http_url) as client:
        reply = client.chat_file(path)
    assert json.loads(reply.text)["n_bytes"] == MAX_AUDIO_BYTES
    assert reply.audio_wav == path.read_bytes()


def test_a_bad_request_fails_alone_in_a_dynamic_batch(echo_server):
    payloads = [b"a" * 100, b"", b"b" * 200, b"c" * 300]

    def send(payload):
        # Every client is closed: an idle keep-alive connection holds tritonserver's shutdown for the
        # whole exit timeout, and a returned exception keeps its client alive through the traceback.
        with EmotionOmniClient(echo_server.http_url) as client:
            try:
                return client.chat(payload)
            except ServingError as err:
                return err

    with ThreadPoolExecutor(len(payloads)) as pool:
        results = list(pool.map(send, payloads))
    error = results.pop(1)
    assert isinstance(error, ServingError), error
    assert "AUDIO" in error.message and "empty" in error.message and error.status == "400"
    facts = [json.loads(reply.text) for reply in results]
    assert [f["n_bytes"] for f in facts] == [100, 200, 300]
    assert max(f["batch"] for f in facts) > 1, "the requests never shared an execute() call"
    assert send(b"after").audio_wav == b"after"


def test_two_servers_side_by_side_and_stop(echo_server, echo_repo, tmp_path):
    second = TritonServer(TritonConfig(model_repository=str(echo_repo), work_dir=str(tmp_path)))
    with second, EmotionOmniClient(second.http_url) as client, EmotionOmniClient(echo_server.http_url) as first:
        assert second.http_url != echo_server.http_url
        assert json.loads(client.chat(b"xy").text)["n_bytes"] == 2
        assert json.loads(first.chat(b"xyz").text)["n_bytes"] == 3
    assert not second.running
    with EmotionOmniClient(second.http_url, timeout_s=2) as client, EmotionOmniClient(echo_server.http_url) as first:
        assert not client.is_ready()
        assert first.is_ready()
    assert "Started HTTPService" in second.log_path.read_text()


@pytest.mark.parametrize("mode", ["explicit", "none"])
def test_a_model_that_fails_to_load_fails_start_with_the_reason(tmp_path, mode):
    repo = write_repository(tmp_path / "repo", FAILING_MODEL)
    server = TritonServer(
        TritonConfig(model_repository=str(repo), model_control_mode=mode, work_dir=str(tmp_path / "work"))
    )
    with pytest.raises(TritonStartupError, match="fake-startup-failure") as excinfo:
        server.start()
    assert "exited with code" in str(excinfo.value)
    assert not server.running


def test_a_model_that_loads_too_slowly_times_out_and_is_stopped(tmp_path):
    repo = write_repository(tmp_path / "repo", SLOW_MODEL)
    server = TritonServer(
        TritonConfig(model_repository=str(repo), startup_timeout_s=4, stop_timeout_s=2, work_dir=str(tmp_path / "work"))
    )
    start = time.perf_counter()
    with pytest.raises(TritonStartupError, match="not ready after 4 s"):
        server.start()
    assert time.perf_counter() - start < 30
    assert not server.running
