"""The omni CLI: every subcommand is listed, errors exit 2 with a message and no traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.audio.io import encode_wav
from components.synthesis import read_manifest
from omni.cli import build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "data", "train", "bench", "evaluate", "serve", "chat", "lineage", "pipeline"):
        assert command in out
    sub = build_parser().parse_args(["chat", "--audio", "a.wav", "--out", "b.wav"])
    assert sub.url is None and not sub.stream  # chat() then calls 127.0.0.1:8000 (HTTP), or :8001 with --stream


def test_data_synthesize(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synthesize",
                "--out",
                str(tmp_path / "ds"),
                "--n",
                "12",
                "--seed",
                "1",
                "--unseen-voice-fraction",
                "0",
                "--engines",
                "espeak-ng,flite",
                "--no-channels",
            ]
        )
        == 0
    )
    rows = read_manifest(tmp_path / "ds")
    assert len(rows) == 12 and not any(row["user_channel"] for row in rows)
    assert {row["speaker"].partition(":")[0] for row in rows} == {"espeak-ng", "flite"}
    assert "wrote 12 dialogues" in capsys.readouterr().out
    # A second run into the same place is refused with the fix, then allowed with --overwrite.
    assert main(["data", "synthesize", "--out", str(tmp_path / "ds"), "--n", "18"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["data", "synthesize", "--out", str(tmp_path / "ds"), "--n", "18", "--overwrite"]) == 0
    rows = read_manifest(tmp_path / "ds")
    assert any(row["user_channel"] for row in rows)  # channels are on by default: phone, codec, room, noise
    assert {row["split"] for row in rows} == {"train", "test", "test_unseen_voice"}


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk", "not a decodable WAV"),
        (encode_wav(np.zeros(16000, np.float32)), "silence"),
    ],
)
def test_chat_refuses_bad_audio(tmp_path, capsys, tiny_model_dir, payload, message):
    bad = tmp_path / "in.wav"
    bad.write_bytes(payload)
    assert main(["chat", "--audio", str(bad), "--out", str(tmp_path / "r.wav"), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "r.wav").exists()


def test_chat_in_process(tmp_path, capsys, tiny_model_dir):
    t = np.arange(24000) / 16000
    (tmp_path / "in.wav").write_bytes(encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
    assert (
        main(
            [
                "chat",
                "--audio",
                str(tmp_path / "in.wav"),
                "--out",
                str(tmp_path / "r.wav"),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert {"text", "response_emotion", "user_emotion", "reply_wav"} <= set(answer)


def test_chat_without_a_server_names_omni_serve(tmp_path, capsys):
    (tmp_path / "in.wav").write_bytes(encode_wav(np.full(8000, 0.1, np.float32)))
    assert (
        main(["chat", "--audio", str(tmp_path / "in.wav"), "--out", str(tmp_path / "r.wav"), "--url", "127.0.0.1:9"])
        == 2
    )
    assert "omni serve" in capsys.readouterr().err


def test_serve_needs_exactly_one_source(capsys):
    assert main(["serve"]) == 2
    assert "exactly one of --model" in capsys.readouterr().err


def test_pipeline_compile(tmp_path):
    assert main(["pipeline", "compile", "--out", str(tmp_path / "p.yaml")]) == 0
    assert "emotion-omni" in (tmp_path / "p.yaml").read_text()


def test_missing_espeak_names_the_install_step(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, no sox on PATH
    assert main(["data", "synthesize", "--out", str(tmp_path / "ds"), "--n", "18"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install espeak-ng" in err and "Traceback" not in err


def test_lineage_without_a_registry_names_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["lineage", "12345678", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow registry at {tmp_path / 'mlflow.db'}" in err and "omni demo --data-dir" in err
