"""instance_device: Triton's instance kind -> the torch device model.py loads onto."""

from __future__ import annotations

import pytest
import torch

from components.inference import instance_device


@pytest.mark.parametrize("kind", ["CPU", "KIND_CPU", "cpu", "MODEL"])
def test_cpu_kinds_run_on_cpu(kind):
    assert instance_device(kind, "0") == "cpu"


def test_an_unknown_kind_names_the_config_field():
    with pytest.raises(ValueError, match="instance_group kind"):
        instance_device("TPU", 0)


def test_gpu_without_cuda_refuses_instead_of_serving_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="KIND_GPU.*no CUDA device.*gpu profile"):
        instance_device("GPU", "0")


def test_gpu_picks_the_assigned_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert instance_device("GPU", "1") == "cuda:1"
    with pytest.raises(RuntimeError, match="assigned GPU 2 but torch sees 2"):
        instance_device("KIND_GPU", 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_responder_on_the_gpu_matches_cpu(tiny_model_dir):
    import numpy as np

    from components.inference import EmotionOmniResponder

    wave = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    cpu = EmotionOmniResponder.from_pretrained(tiny_model_dir, speak=False).respond(wave)
    gpu = EmotionOmniResponder.from_pretrained(tiny_model_dir, speak=False, device="cuda:0").respond(wave)
    assert gpu.user_emotion == cpu.user_emotion
    assert np.allclose(gpu.emotion_vector, cpu.emotion_vector, atol=1e-3)
