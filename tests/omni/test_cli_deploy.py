"""`omni deploy` and `omni rollback` refuse bad input before anything changes, in one line (exit 2); an outcome
other than deployed is printed and exits 2 too. The deploys themselves: tests/serving/test_deploy_local.py (through
`omni rollback` as well) and test_deploy_cluster.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.deploy.errors import DeployError
from components.deploy.outcome import DEPLOYED, ROLLED_BACK, DeployOutcome
from omni.cli import CLIError, main
from omni.deploy import _report


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def test_from_is_refused_for_a_cluster_target(capsys, tmp_path):
    code, err = _run(capsys, "deploy", "--version", "2", "--from", str(tmp_path), "--release", "omni")
    assert code == 2 and "--from installs into a local repository" in err


def test_a_missing_admin_key_is_refused_before_the_server_is_asked(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_ADMIN_KEY", raising=False)
    code, err = _run(capsys, "deploy", "--version", "2", "--repository", str(tmp_path), "--url", "127.0.0.1:9")
    assert code == 2 and err == (
        "omni: error: $TRITON_ADMIN_KEY is not set: export it with the restricted-API key `omni serve` was started "
        "with (the repository API that loads versions answers only requests carrying it)"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_missing_smoke_audio_file_is_named(capsys, tmp_path):
    code, err = _run(capsys, "deploy", "--version", "2", "--smoke-audio", str(tmp_path / "nope.wav"))
    assert code == 2 and f"--smoke-audio {tmp_path / 'nope.wav'} is not a file" in err


def test_rollback_with_no_history_says_what_to_pass(capsys, tmp_path):
    code, err = _run(capsys, "rollback", "--repository", str(tmp_path), "--data-dir", str(tmp_path))
    assert code == 2 and "no version to roll back to" in err and "--to-version N" in err


def test_an_outcome_other_than_deployed_is_printed_and_fails_the_command(capsys):
    rolled_back = DeployOutcome("local 127.0.0.1:8000", 3, 2, outcome=ROLLED_BACK, reason="metrics window: p95 3 s")
    with pytest.raises(CLIError, match="v3 was rolled back: metrics window: p95 3 s"):
        _report(rolled_back)
    assert capsys.readouterr().out.startswith("deploy v3 to local 127.0.0.1:8000 (was v2): rolled_back")
    assert _report(DeployOutcome("t", 3, 2, outcome=DEPLOYED)).ok


@pytest.mark.triton
@pytest.mark.parametrize("key", ["serve-test-key-51e0", ""], ids=["TRITON_ADMIN_KEY set", "unset"])
def test_omni_serve_opens_the_repository_api_to_its_admin_key_only(key, tmp_path, monkeypatch, capsys):
    """`omni serve` runs explicit model control with the repository API behind $TRITON_ADMIN_KEY; without one the
    API is locked with a key nobody is told."""
    from omni.cli import serve
    from serving.repository_api import RepositoryAPI
    from tests.serving.fake_models import ECHO_MODEL, write_repository

    monkeypatch.setenv("TRITON_ADMIN_KEY", key)
    repo = write_repository(tmp_path / "repo", ECHO_MODEL)
    server = serve(model_repository=repo, http_port=0, grpc_port=0, metrics_port=0, work_dir=tmp_path, block=False)
    try:
        printed = capsys.readouterr().out
        refused = RepositoryAPI(server.grpc_url, "not-the-key")
        with pytest.raises(DeployError, match="refused the restricted-API key"):
            refused.index()
        if key:
            assert RepositoryAPI(server.grpc_url, key).ready_versions("emotion_omni") == [1]
            assert "repository API restricted to the triton-admin-key header ($TRITON_ADMIN_KEY)" in printed
        else:
            assert "repository API locked (set TRITON_ADMIN_KEY before `omni serve`" in printed
            assert "--http-restricted-api=model-repository:triton-admin-key=" in Path(
                f"/proc/{server.pid}/cmdline"
            ).read_bytes().decode().replace("\0", " ")
    finally:
        server.stop()
