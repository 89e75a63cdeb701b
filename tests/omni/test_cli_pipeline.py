"""`omni pipeline compile|submit|schedule`: flags reach the IR and the KFP API (fake_kfp.py); errors exit 2."""

from __future__ import annotations

import socket

import pytest
import yaml

from omni.cli import main
from tests.pipelines.fake_kfp import FakeKFP


@pytest.fixture
def kfp_api(monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    with FakeKFP() as fake:
        yield fake


def test_compile_flags_reach_the_ir(tmp_path):
    out = tmp_path / "p.yaml"
    assert (
        main(
            [
                "pipeline",
                "compile",
                "--out",
                str(out),
                "--train-gpus",
                "0",
                "--shared-pvc",
                "omni-shared",
                "--shared-mount-path",
                "/shared",
                "--gpu-node-selector",
                "pool=a100",
            ]
        )
        == 0
    )
    spec, platform = yaml.safe_load_all(out.read_text())
    train = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert train["pvcMount"][0]["mountPath"] == "/shared"
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    constant = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["trainjob_json"]["runtimeValue"]
    assert '"gpu_node_selector": {"pool": "a100"}' in constant["constant"]


def test_submit(kfp_api, capsys):
    assert (
        main(
            [
                "pipeline",
                "submit",
                "--host",
                kfp_api.url,
                "--param",
                "epochs=2",
                "--param",
                "train_backend=trainjob",
                "--run-name",
                "smoke",
                "--disable-caching",
                "--experiment",
                "ci",
                "--service-account",
                "omni-runner",
                "--shared-pvc",
                "omni-shared",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "submitted run 'smoke' (run-1)" in out and "epochs=2 train_backend=trainjob" in out
    assert f"{kfp_api.url}/#/runs/details/run-1" in out
    (run,) = kfp_api.bodies("POST", "/apis/v2beta1/runs")
    assert run["runtime_config"]["parameters"] == {"epochs": 2, "train_backend": "trainjob"}
    assert run["service_account"] == "omni-runner"
    assert kfp_api.bodies("POST", "/apis/v2beta1/experiments")[0]["display_name"] == "ci"


def test_schedule(kfp_api, capsys):
    assert (
        main(
            [
                "pipeline",
                "schedule",
                "--host",
                kfp_api.url,
                "--cron",
                "0 3 * * *",
                "--job-name",
                "nightly",
                "--max-concurrency",
                "1",
                "--enable-caching",
            ]
        )
        == 0
    )
    assert "submitted recurring run 'nightly' (rr-1) in experiment exp-1, cron '0 0 3 * * *'" in capsys.readouterr().out
    (body,) = kfp_api.bodies("POST", "/apis/v2beta1/recurringruns")
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"


def test_bad_param_names_the_key_and_the_known_ones(kfp_api, capsys):
    assert main(["pipeline", "submit", "--host", kfp_api.url, "--param", "epoch=2"]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'epoch'" in err and "epochs" in err and "train_backend" in err
    assert "Traceback" not in err and kfp_api.requests == []


def test_unreachable_host_names_the_url(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["pipeline", "submit", "--host", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}" in err and "Traceback" not in err


def test_flag_errors(tmp_path, capsys):
    assert main(["pipeline", "compile", "--out", str(tmp_path / "p.yaml"), "--gpu-node-selector", "a100"]) == 2
    assert "expected LABEL=VALUE" in capsys.readouterr().err
    (tmp_path / "p.yaml").write_text("x")
    assert (
        main(
            [
                "pipeline",
                "submit",
                "--host",
                "http://127.0.0.1:9",
                "--package",
                str(tmp_path / "p.yaml"),
                "--shared-pvc",
                "x",
            ]
        )
        == 2
    )
    assert "give the cluster settings flags to `omni pipeline compile`" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the two caching flags exclude each other
        main(["pipeline", "submit", "--host", "http://x", "--enable-caching", "--disable-caching"])


def test_pipeline_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in ("compile", "submit", "schedule"))
