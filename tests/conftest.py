"""Fixtures shared across the suite: tiny models the project makes itself (nothing is downloaded)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub name must fail fast, never hang on the network

TINY_TEXTS = [
    "I am so sorry to hear that. Let us sort out the refund together.",
    "That is wonderful news! Enjoy the trip and send me a photo.",
    "Take a deep breath. The doctor will explain everything tomorrow.",
    "I understand why you are upset, and I apologise for the delay.",
]


def tiny_config(tokenizer):
    """A model config small enough for CPU unit tests (hidden 32, 1-2 layers, 2 s window)."""
    from components.model.configuration import EmotionOmniConfig
    from components.model.tokenizer import apply_tokenizer

    config = EmotionOmniConfig(
        window_seconds=2.0,
        speech_encoder={"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64},
        emotion_encoder_dim=32, adapter_hidden=64,
        llm={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 256, "tie_word_embeddings": True},
        max_response_tokens=12)
    return apply_tokenizer(config, tokenizer)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from components.model.tokenizer import train_tokenizer
    return train_tokenizer(TINY_TEXTS * 4, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """An exported, untrained tiny Emotion Omni model directory (config.json, model.safetensors, tokenizer.json)."""
    import torch

    from components.export.pretrained import save_pretrained
    from components.model.modeling import EmotionOmniModel

    torch.manual_seed(0)
    model = EmotionOmniModel(tiny_config(tiny_tokenizer))
    return save_pretrained(model, tiny_tokenizer, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_dialogues(tmp_path_factory) -> Path:
    """A 14-dialogue synthesized dataset (every emotion in both splits), built once per session."""
    from components.synthesis import SynthesisConfig, synthesize_dataset

    return synthesize_dataset(SynthesisConfig(n=14, seed=3), tmp_path_factory.mktemp("dialogues") / "data",
                              progress=False).out_dir
