"""LoRA (peft) on a pretrained LM from a local path, a frozen pretrained emotion encoder, merged on export.

The "pretrained" LM is a tiny Qwen2 the test saves with save_pretrained (nothing downloads); the emotion encoder
comes from an exported Emotion Omni model, our stand-in for emotion2vec.
"""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM

from components.export.pretrained import load_pretrained
from components.training import TrainConfig, train
from components.training.prepare import prepare_run
from tests.conftest import tiny_config, tiny_thinker_config


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, tiny_tokenizer):
    """A local "pretrained" Qwen2 checkpoint with its tokenizer.json, as a Qwen2.5 download directory holds: the
    suite's tiny LM, its embeddings larger than the tokenizer, as a pretrained LM's often are."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("qwen2") / "tiny-qwen2"
    llm = tiny_thinker_config(tiny_tokenizer).qwen2_config()
    llm.vocab_size = 512
    Qwen2ForCausalLM(llm).save_pretrained(path)
    tiny_tokenizer.save(str(path / "tokenizer.json"))
    return path


def lora_config(tokenizer, llm_path, emotion_model, **overrides) -> TrainConfig:
    return TrainConfig(
        model=tiny_config(tokenizer),
        epochs=1,
        micro_batch_size=2,
        log_every_steps=1,
        max_steps=2,
        tokenizer_vocab_size=400,
        lr_llm=5e-3,
        llm_path=str(llm_path),
        lora_r=8,
        emotion_encoder_path=str(emotion_model),
        freeze_emotion_encoder=True,
        **overrides,
    )


def test_lora_trains_adapters_only_and_exports_a_plain_merged_model(
    tiny_dialogues, tiny_tokenizer, tiny_qwen2, tiny_text_model_dir, tmp_path
):
    with socket.socket() as s:  # rank 0 serves live metrics on it while it trains (the server must start)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = lora_config(tiny_tokenizer, tiny_qwen2, tiny_text_model_dir, metrics_port=port)
    result = train(tiny_dialogues, tmp_path / "run", config)
    summary = result.summary
    # The LM's own tokenizer, not one trained on the dataset: a pretrained LM's embeddings are indexed by its ids.
    assert (result.model_dir / "tokenizer.json").read_text() == (tiny_qwen2 / "tokenizer.json").read_text()
    assert summary["lora_r"] == 8 and summary["export_check"]["abs_diff"] <= 1e-4  # merged == adapters, numerically
    # Frozen: the pretrained LM's own weights and the pretrained emotion encoder; everything else trains, the
    # adapters included.
    base = load_file(tiny_qwen2 / "model.safetensors")
    source = load_file(tiny_text_model_dir / "model.safetensors")
    encoder = [k for k in source if k.startswith("thinker.emotion_encoder.")]
    whisper_positions = source["thinker.speech_encoder.embed_positions.weight"].numel()  # fixed sinusoids, always
    frozen = sum(t.numel() for t in base.values()) + sum(source[k].numel() for k in encoder) + whisper_positions
    assert summary["trainable_parameters"] == summary["parameters"] - frozen

    exported = load_file(result.model_dir / "model.safetensors")
    assert not [k for k in exported if "lora_" in k or "base_model" in k]  # serving loads a plain model
    lm = {k.removeprefix("thinker.llm."): v for k, v in exported.items() if k.startswith("thinker.llm.")}
    assert torch.equal(lm["model.norm.weight"], base["model.norm.weight"])  # frozen, not adapted: untouched
    assert torch.equal(lm["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    moved = (lm["model.layers.0.self_attn.q_proj.weight"] - base["model.layers.0.self_attn.q_proj.weight"]).abs()
    assert 0 < moved.max() < 0.5  # the adapters' B @ A, merged in
    assert encoder and all(torch.equal(exported[k], source[k]) for k in encoder)  # frozen pretrained encoder

    model, _ = load_pretrained(result.model_dir)
    assert type(model.thinker.llm) is Qwen2ForCausalLM  # no peft wrapper left


def test_a_lora_target_that_matches_nothing_fails_before_any_rank(
    tiny_dialogues, tiny_tokenizer, tiny_qwen2, tiny_text_model_dir, tmp_path
):
    config = lora_config(tiny_tokenizer, tiny_qwen2, tiny_text_model_dir, lora_target_modules=["q_proj", "qkv"])
    with pytest.raises(
        ValueError,
        match=r"lora_target_modules \['qkv'\] match no module of the LM; its linear "
        r"layers are \[.*'q_proj'",
    ):
        prepare_run(tiny_dialogues, tmp_path, config)
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(ValueError, match="llm_path=.* is not a local transformers checkpoint: missing config.json"):
        prepare_run(tiny_dialogues, tmp_path, lora_config(tiny_tokenizer, not_a_model, tiny_text_model_dir))
