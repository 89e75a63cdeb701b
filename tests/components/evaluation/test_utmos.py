"""UTMOS from a local TorchScript checkpoint: loaded, called with UTMOS22's interface, or not computed when unset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.evaluation.dnsmos import MetricNotComputed
from components.evaluation.utmos import CHECKPOINT_VAR, utmos


class _LoudnessMOS(torch.nn.Module):
    """A stand-in with UTMOS22's interface (forward(wave (B, T), sr) -> (B,)): louder clips score higher."""

    def forward(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
        return 1.0 + 4.0 * torch.tanh(10.0 * wave.abs().mean(dim=-1)) + 0.0 * sr


class _TwoScores(torch.nn.Module):
    def forward(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
        return torch.ones(2)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "utmos.pt"
    torch.jit.script(_LoudnessMOS()).save(str(path))
    monkeypatch.setenv(CHECKPOINT_VAR, str(path))
    return path


def _tone(amplitude: float) -> np.ndarray:
    return (amplitude * np.sin(np.linspace(0, 800 * np.pi, 16000))).astype(np.float32)


def test_scores_come_from_the_checkpoint_in_clip_order(checkpoint):
    quiet, loud = utmos([_tone(0.01), _tone(0.5)])
    assert 1.0 <= quiet < loud <= 5.0
    assert quiet == pytest.approx(1.0 + 4.0 * np.tanh(10.0 * np.abs(_tone(0.01)).mean()), rel=1e-5)


def test_unset_is_not_computed_with_the_reason(monkeypatch):
    monkeypatch.delenv(CHECKPOINT_VAR, raising=False)
    with pytest.raises(MetricNotComputed, match=f"set {CHECKPOINT_VAR}"):
        utmos([_tone(0.1)])


def test_a_configured_checkpoint_that_cannot_serve_is_an_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(CHECKPOINT_VAR, str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match=f"{CHECKPOINT_VAR}=.*missing.pt does not exist"):
        utmos([_tone(0.1)])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    monkeypatch.setenv(CHECKPOINT_VAR, str(junk))
    with pytest.raises(ValueError, match="is not a TorchScript module"):
        utmos([_tone(0.1)])
    two = tmp_path / "two.pt"
    torch.jit.script(_TwoScores()).save(str(two))
    monkeypatch.setenv(CHECKPOINT_VAR, str(two))
    with pytest.raises(ValueError, match="not one MOS"):
        utmos([_tone(0.1)])


def test_bad_clips_are_refused(checkpoint):
    with pytest.raises(ValueError, match="clip 1: UTMOS needs a non-empty mono wave"):
        utmos([_tone(0.1), np.zeros((2, 100), dtype=np.float32)])
