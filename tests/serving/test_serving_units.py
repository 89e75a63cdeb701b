"""Serving pieces that need no running server: the trio's contract, repository building, client/launcher errors."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

from components import contracts
from serving import launcher
from serving.client import EmotionOmniClient, ServingError
from serving.launcher import TritonConfig, TritonServer, find_tritonserver
from serving.repository import (
    TEMPLATE_DIR,
    build_model_repository,
    weights_dir_name,
    with_instance_kind,
    with_parameter,
)


def _config_tensors(text: str) -> dict[str, str]:
    return dict(re.findall(r'name:\s*"(\w+)"[^}]*?data_type:\s*(\w+)', text))


# The tensors both models have: the audio in; the text, emotions and speech note out.
SHARED_TENSORS = {
    contracts.INPUT_AUDIO: "TYPE_STRING",
    contracts.OUTPUT_RESPONSE_TEXT: "TYPE_STRING",
    contracts.OUTPUT_RESPONSE_EMOTION: "TYPE_STRING",
    contracts.OUTPUT_USER_EMOTION: "TYPE_STRING",
    contracts.OUTPUT_EMOTION_VECTOR: "TYPE_FP32",
    contracts.OUTPUT_SPEECH_NOTE: "TYPE_STRING",
}


def test_config_pbtxt_tensors_are_the_contract_names():
    text = (TEMPLATE_DIR / "config.pbtxt").read_text()
    assert re.search(r'^name:\s*"(\w+)"', text, re.M).group(1) == contracts.TRITON_MODEL_NAME
    assert _config_tensors(text) == {**SHARED_TENSORS, contracts.OUTPUT_RESPONSE_AUDIO: "TYPE_STRING"}
    assert weights_dir_name(text) == "weights"


def test_the_streaming_config_pbtxt_is_decoupled_with_the_contract_names():
    from serving.repository import TEMPLATES

    text = (TEMPLATES / contracts.TRITON_STREAM_MODEL_NAME / "config.pbtxt").read_text()
    assert re.search(r'^name:\s*"(\w+)"', text, re.M).group(1) == contracts.TRITON_STREAM_MODEL_NAME
    assert re.search(r"model_transaction_policy\s*\{\s*decoupled:\s*true", text)
    assert _config_tensors(text) == {**SHARED_TENSORS, contracts.OUTPUT_AUDIO_CHUNK: "TYPE_FP32"}
    assert weights_dir_name(text) == "weights"


def test_model_py_takes_tensor_names_from_contracts():
    source = (TEMPLATE_DIR / "1" / "model.py").read_text()
    for name in (
        "AUDIO",
        "RESPONSE_TEXT",
        "RESPONSE_EMOTION",
        "USER_EMOTION",
        "EMOTION_VECTOR",
        "RESPONSE_AUDIO",
        "SPEECH_NOTE",
        "AUDIO_CHUNK",
    ):
        assert f'"{name}"' not in source, f"{name} is spelled out in model.py; use components.contracts"


def _exported(tmp_path):
    model_dir = tmp_path / "export"
    model_dir.mkdir(parents=True)
    for name in (contracts.MODEL_CONFIG_FILE, contracts.MODEL_WEIGHTS_FILE, contracts.TOKENIZER_FILE, "extra.txt"):
        (model_dir / name).write_text(name)
    return model_dir


def test_build_model_repository_lays_out_the_trio_and_weights(tmp_path):
    repo = build_model_repository(_exported(tmp_path), tmp_path / "repo", version=3)
    model_root = repo / contracts.TRITON_MODEL_NAME
    assert (model_root / "config.pbtxt").read_text() == (TEMPLATE_DIR / "config.pbtxt").read_text()
    assert (model_root / "3" / "model.py").read_text() == (TEMPLATE_DIR / "1" / "model.py").read_text()
    weights = sorted(p.name for p in (model_root / "3" / "weights").iterdir())
    assert weights == sorted(
        [contracts.MODEL_CONFIG_FILE, contracts.MODEL_WEIGHTS_FILE, contracts.TOKENIZER_FILE, "extra.txt"]
    )
    newer = _exported(tmp_path / "again")
    (newer / "extra.txt").unlink()
    build_model_repository(newer, repo, version=3)  # rebuilding replaces the version, stale files included
    assert not (model_root / "3" / "weights" / "extra.txt").exists()
    # The streaming twin: its own (decoupled) config.pbtxt, the same model.py, the same weights as hard links.
    stream_root = repo / contracts.TRITON_STREAM_MODEL_NAME
    assert "decoupled: true" in (stream_root / "config.pbtxt").read_text()
    assert (stream_root / "3" / "model.py").read_text() == (TEMPLATE_DIR / "1" / "model.py").read_text()
    weights_file = f"3/weights/{contracts.MODEL_WEIGHTS_FILE}"
    assert (stream_root / weights_file).stat().st_ino == (model_root / weights_file).stat().st_ino


def test_the_repository_carries_the_lineage_and_the_model_card(tmp_path):
    lineage = {"lineage_id": "0b6c3a4e-8f0e", "model_name": "emotion-omni", "model_version": "3"}
    repo = build_model_repository(
        _exported(tmp_path), tmp_path / "repo", version=3, lineage=lineage, model_card="# emotion-omni v3\n"
    )
    for name in (contracts.TRITON_MODEL_NAME, contracts.TRITON_STREAM_MODEL_NAME):
        config = (repo / name / "config.pbtxt").read_text()
        assert weights_dir_name(config) == "weights"  # the parameter it already had is untouched
        assert re.search(r'key: "lineage_id"\s*value: \{ string_value: "0b6c3a4e-8f0e" \}', config), config
        assert json.loads((repo / name / "3" / contracts.LINEAGE_FILE).read_text()) == lineage
        assert (repo / name / "3" / contracts.MODEL_CARD_FILE).read_text() == "# emotion-omni v3\n"
    again = with_parameter(config, "lineage_id", "next-run")
    assert again.count('key: "lineage_id"') == 1 and "next-run" in again  # replaced, not appended twice
    with pytest.raises(ValueError, match="only letters, digits"):
        with_parameter(config, "lineage_id", 'a" } evil {')


def test_gpu_instance_kind_writes_kind_gpu(tmp_path):
    repo = build_model_repository(_exported(tmp_path), tmp_path / "repo", instance_kind="gpu")
    for name in (contracts.TRITON_MODEL_NAME, contracts.TRITON_STREAM_MODEL_NAME):
        config = (repo / name / "config.pbtxt").read_text()
        assert re.search(r"instance_group\s*\[\s*\{\s*kind:\s*KIND_GPU", config), config
        assert "kind: KIND_CPU" not in config
    with pytest.raises(ValueError, match="instance_kind='tpu'"):
        build_model_repository(_exported(tmp_path / "t"), tmp_path / "repo2", instance_kind="tpu")


def test_with_instance_kind_needs_exactly_one_kind():
    assert "kind: KIND_GPU" in with_instance_kind("instance_group [ {\n  kind: KIND_CPU\n} ]", "gpu")
    # Instance counts were measured on CPU cores; on a GPU each is another copy of the weights: one until measured.
    shipped = (TEMPLATE_DIR / "config.pbtxt").read_text()
    assert "count: 2" in shipped and "count: 2" in with_instance_kind(shipped, "cpu")
    assert "count: 1" in with_instance_kind(shipped, "gpu") and "count: 2" not in with_instance_kind(shipped, "gpu")
    with pytest.raises(ValueError, match="2 instance_group kinds"):
        with_instance_kind("kind: KIND_CPU\nkind: KIND_CPU", "cpu")


def test_build_model_repository_names_the_missing_file(tmp_path):
    model_dir = _exported(tmp_path)
    (model_dir / contracts.MODEL_WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=contracts.MODEL_WEIGHTS_FILE):
        build_model_repository(model_dir, tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match="the directory does not exist"):
        build_model_repository(tmp_path / "nope", tmp_path / "repo")
    with pytest.raises(ValueError, match="version"):
        build_model_repository(_exported(tmp_path / "v"), tmp_path / "repo", version=0)


def test_find_tritonserver_is_the_wheels_binary():
    binary = find_tritonserver()
    assert binary.name == "tritonserver" and os.access(binary, os.X_OK)


def test_find_tritonserver_without_the_wheel_says_what_to_install(monkeypatch):
    monkeypatch.setattr(launcher.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install nvidia-pytriton==0.7.0")):
        find_tritonserver()


def test_launcher_refuses_bad_config(tmp_path):
    with pytest.raises(ValueError, match="model_control_mode='poll'"):
        TritonConfig(model_repository=str(tmp_path), model_control_mode="poll")
    with pytest.raises(FileNotFoundError, match="build_model_repository"):
        TritonServer(TritonConfig(model_repository=str(tmp_path / "missing"))).start()
    with pytest.raises(RuntimeError, match="start"):
        _ = TritonServer(TritonConfig(model_repository=str(tmp_path))).http_url


def test_server_env_puts_this_interpreter_first():
    env = launcher.server_env({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"})
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(launcher.sys.executable)
    assert env["LD_LIBRARY_PATH"].endswith("nvidia_pytriton.libs" + os.pathsep + "/opt/lib")
    # model.py splits the cores between a model's instances; an OMP_NUM_THREADS from here would override that.
    assert "OMP_NUM_THREADS" not in env


def test_client_refuses_oversized_audio_before_sending(tmp_path):
    client = EmotionOmniClient("127.0.0.1:1")
    with pytest.raises(ValueError, match="MAX_AUDIO_BYTES"):
        client.chat(b"\0" * (contracts.MAX_AUDIO_BYTES + 1))
    path = tmp_path / "huge.wav"
    with open(path, "wb") as f:
        f.truncate(contracts.MAX_AUDIO_BYTES + 1)
    with pytest.raises(ValueError, match="huge.wav"):
        client.chat_file(path)
    with pytest.raises(TypeError, match="chat_file"):
        client.chat(str(path))


def test_client_without_a_server_names_the_url_and_omni_serve():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens: bound, never listen()ed
        client = EmotionOmniClient(url, timeout_s=2)
        assert not client.is_ready()
        with pytest.raises(ServingError, match="omni serve") as excinfo:
            client.chat(b"RIFF")
    assert url in str(excinfo.value)
