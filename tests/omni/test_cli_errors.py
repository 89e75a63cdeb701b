"""`omni` tells a user's mistake from its own bug: an OmniError is one clean line and exit 2; anything else keeps
its traceback, asks for a report naming the command line, and exits 1."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

import omni.cli as cli
from components.audio.io import encode_wav
from components.errors import ConfigError, InputNotFoundError, OmniError, OutputExistsError
from omni.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_PACKAGES = ("components", "pipelines", "serving", "omni")
GENERIC_BASES = (Exception, BaseException, object)  # not what a caller catches


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "argv, message",
    [
        # ProbeConfig refuses the value before any dataset is read: the message is the whole output.
        (["data", "probe", "--train", "ds", "--eval", "ds", "--train-turns", "-1"], "train_turns=-1 >= 0"),
        (["bench", "synthesize", "--out", "bench", "--workers", "1,two"], "--workers '1,two': give comma-separated"),
    ],
)
def test_a_bad_value_is_one_clean_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("omni: error: ") and message in lines[0]
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_missing_dataset_is_one_clean_line(tmp_path, capsys):
    missing = tmp_path / "no-such-dataset"
    assert main(["data", "probe", "--train", str(missing), "--eval", str(missing)]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("omni: error: ") and str(missing) in lines[0]
    assert "Traceback" not in lines[0]


def test_a_missing_model_is_one_clean_line(tmp_path, capsys):
    (tmp_path / "in.wav").write_bytes(encode_wav(np.full(8000, 0.1, np.float32)))
    missing = tmp_path / "run" / "model"
    argv = ["chat", "--audio", str(tmp_path / "in.wav"), "--out", str(tmp_path / "r.wav"), "--model", str(missing)]
    assert main(argv) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"omni: error: {missing} is not an exported Emotion Omni model")
    assert not (tmp_path / "r.wav").exists()


@pytest.mark.parametrize("error", [KeyError("speaker"), ValueError("an internal check"), FileNotFoundError("x.pt")])
def test_a_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch, tmp_path, capsys, error):
    # Plain ValueError / FileNotFoundError are bugs now: only the platform's own types are user errors.
    def buggy_evaluate(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(cli, "evaluate", buggy_evaluate)
    argv = ["evaluate", "--model", str(tmp_path / "m"), "--dataset", str(tmp_path / "a dataset"), "--out", "o"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "buggy_evaluate" in err
    assert f"{type(error).__name__}: " in err
    assert "this is a bug in omni" in err and "please report it" in err.lower()
    # The command line comes back shell-quoted, ready to paste into the report.
    assert f"omni evaluate --model {tmp_path / 'm'} --dataset '{tmp_path / 'a dataset'}' --out o" in err
    assert "omni: error:" not in err


@pytest.mark.parametrize(
    "error",
    [ConfigError("bad --n"), InputNotFoundError("no dataset at d"), OutputExistsError("out is not empty")],
)
def test_each_platform_error_type_is_a_user_error(monkeypatch, capsys, error):
    def refuse(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(cli, "compile_pipeline", refuse)
    assert main(["pipeline", "compile"]) == 2
    assert _error_lines(capsys.readouterr().err) == [f"omni: error: {error}"]


def test_an_interrupt_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "compile_pipeline", interrupted)
    assert main(["pipeline", "compile"]) == 130
    assert _error_lines(capsys.readouterr().err) == ["omni: interrupted"]


def _defined_exceptions() -> list[tuple[str, str]]:
    """(module, class) for every class in the platform's packages whose name ends in Error or Exception."""
    found = []
    for package in PLATFORM_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found += [
                (module, node.name)
                for node in tree.body
                if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception"))
            ]
    return found


def test_every_platform_error_type_is_an_omni_error():
    # A domain error that is not an OmniError would print as a bug (traceback, exit 1) although its message
    # names the user's fix; each outside the CLI also keeps a builtin base, so callers' `except ValueError` etc.
    # still catch it.
    found = _defined_exceptions()
    assert len(found) >= 20, found  # the walk found the platform's error classes, not an empty tree
    not_omni, no_builtin = [], []
    for module, name in found:
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, OmniError):
            not_omni.append(f"{module}.{name}")
        builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in GENERIC_BASES]
        if cls is not OmniError and module.split(".")[0] != "omni" and not builtins:
            no_builtin.append(f"{module}.{name}")
    assert not_omni == [], f"derive these from components.errors.OmniError (and their builtin): {not_omni}"
    assert no_builtin == [], f"these lost the builtin base callers catch: {no_builtin}"
