"""Triton's repository API behind the admin key, against a real tritonserver started with TritonConfig.admin_key,
serving the echo model (v1) and a model that fails to load (v2)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.contracts import DEPLOYMENTS_FILE, TRITON_ADMIN_HEADER, TRITON_MODEL_NAME
from components.deploy.errors import DeployError
from components.errors import ConfigError
from serving.client import EmotionOmniClient
from serving.launcher import TritonConfig, TritonServer, free_ports
from serving.repository import CONFIG_FILE
from serving.repository_api import RepositoryAPI
from serving.versions import pin_version
from tests.serving.fake_models import ECHO_MODEL, FAILING_MODEL, write_repository

pytestmark = pytest.mark.triton

KEY = "test-admin-key-4f1c"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = write_repository(tmp_path_factory.mktemp("repo"), ECHO_MODEL)
    model_root = root / TRITON_MODEL_NAME
    (model_root / "2").mkdir()
    (model_root / "2" / "model.py").write_text(FAILING_MODEL)
    for version in ("1", "2"):
        (model_root / version / CONFIG_FILE).write_text((model_root / CONFIG_FILE).read_text())
    pin_version(root, TRITON_MODEL_NAME, 1)
    (root / DEPLOYMENTS_FILE).write_text("[]\n")  # tritonserver must ignore a plain file at the root
    return root


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    config = TritonConfig(model_repository=str(repo), admin_key=KEY, work_dir=str(tmp_path_factory.mktemp("triton")))
    with TritonServer(config) as server:
        yield server


def test_the_key_opens_the_api_and_the_index_lists_models_only(server):
    api = RepositoryAPI(server.grpc_url, KEY)
    index = api.index()
    assert index == [{"name": TRITON_MODEL_NAME, "version": "1", "state": "READY"}]  # no deployments.json
    assert api.ready_versions(TRITON_MODEL_NAME) == [1]
    assert api.ready_versions("no_such_model") == []
    assert DEPLOYMENTS_FILE not in server.log_path.read_text()


@pytest.mark.parametrize("key", ["", "wrong-key"], ids=["no key", "wrong key"])
def test_a_missing_or_wrong_key_is_refused_with_the_fix_and_never_echoed(server, key):
    api = RepositoryAPI(server.grpc_url, key, key_env="MY_KEY_ENV")
    with pytest.raises(DeployError) as excinfo:
        api.load(TRITON_MODEL_NAME)
    message = str(excinfo.value)
    assert "refused the restricted-API key in $MY_KEY_ENV" in message
    assert "set it to the key omni serve was started with" in message
    assert f"expecting header 'triton-grpc-protocol-{TRITON_ADMIN_HEADER}'" in message  # Triton's own words
    assert KEY not in message and (not key or key not in message)
    assert RepositoryAPI(server.grpc_url, KEY).ready_versions(TRITON_MODEL_NAME) == [1]


def test_the_http_port_is_restricted_too(server):
    """The API goes over gRPC (an HTTP load stalls HTTP callers), but the HTTP port's repository API is locked too."""
    request = urllib.request.Request(f"http://{server.http_url}/v2/repository/index", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 403
    assert f"expecting header '{TRITON_ADMIN_HEADER}'" in excinfo.value.read().decode()
    assert RepositoryAPI(server.grpc_url, KEY).ready_versions(TRITON_MODEL_NAME) == [1]


def test_a_failed_load_carries_the_models_reason_and_the_old_version_serves_on(server, repo):
    api = RepositoryAPI(server.grpc_url, KEY)
    previous = pin_version(repo, TRITON_MODEL_NAME, 2)
    try:
        with pytest.raises(DeployError, match="could not load emotion_omni on .*fake-startup-failure"):
            api.load(TRITON_MODEL_NAME)
    finally:
        (repo / TRITON_MODEL_NAME / CONFIG_FILE).write_text(previous)
    assert api.ready_versions(TRITON_MODEL_NAME) == [1]
    with EmotionOmniClient(server.http_url) as client:
        assert json.loads(client.chat(b"still here").text)["n_bytes"] == len(b"still here")
    with pytest.raises(DeployError, match="could not load nope on .*failed to poll from model repository"):
        api.load("nope")


def test_unload_then_load_again(server):
    api = RepositoryAPI(server.grpc_url, KEY)
    api.unload(TRITON_MODEL_NAME)
    assert api.ready_versions(TRITON_MODEL_NAME) == []
    api.load(TRITON_MODEL_NAME)
    assert api.ready_versions(TRITON_MODEL_NAME) == [1]


def test_a_server_that_is_not_there(server):
    [port] = free_ports("127.0.0.1", 1)
    with pytest.raises(
        DeployError, match=rf"cannot reach Triton's gRPC port at 127.0.0.1:{port} .*start it with `omni serve`"
    ):
        RepositoryAPI(f"127.0.0.1:{port}", KEY, timeout_s=5).index()


def test_the_key_is_on_the_command_line_only(server):
    """Triton takes it there (the process table shows it: a single-user machine's trade-off); never in its log or
    in the config's repr, which tracebacks and logs print."""
    assert KEY in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
    assert KEY not in server.log_path.read_text()
    assert KEY not in repr(server.config)
    with pytest.raises(ConfigError, match="must not contain"):
        TritonConfig(model_repository=".", admin_key="a=b")


def test_an_explicit_server_can_start_with_nothing_loaded(repo, tmp_path):
    config = TritonConfig(
        model_repository=str(repo), admin_key=KEY, load_models_at_start=False, work_dir=str(tmp_path / "work")
    )
    with TritonServer(config) as server:
        api = RepositoryAPI(server.grpc_url, KEY)
        assert api.ready_versions(TRITON_MODEL_NAME) == []
        with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
    with pytest.raises(ConfigError, match="needs model_control_mode='explicit'"):
        TritonConfig(model_repository=".", model_control_mode="none", load_models_at_start=False)
