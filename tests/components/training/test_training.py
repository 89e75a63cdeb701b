"""Training: config validation, the DeepSpeed config, batching, and a real 2-rank ZeRO-2 run on tiny data."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from components.export.pretrained import load_pretrained
from components.synthesis import read_manifest
from components.training import TrainConfig, TrainingError, train
from components.training.config import deepspeed_config
from components.training.data import DialogueDataset, collate, to_device
from components.training.prepare import prepare_run
from tests.conftest import tiny_config, tiny_thinker_config


def tiny_train_config(tiny_tokenizer, **overrides) -> TrainConfig:
    model = tiny_config(tiny_tokenizer)
    return TrainConfig(
        model=model, epochs=1, micro_batch_size=2, log_every_steps=1, tokenizer_vocab_size=400, **overrides
    )


def test_config_round_trip_and_errors(tmp_path):
    config = TrainConfig(epochs=3)
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json").to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="zero_stage=5"):
        TrainConfig(zero_stage=5).validate()
    with pytest.raises(ValueError, match="micro_batch_size=0"):
        TrainConfig(micro_batch_size=0).validate()
    with pytest.raises(ValueError, match="unknown TrainConfig keys \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_deepspeed_config_has_no_optimizer_block():
    ds = deepspeed_config(TrainConfig(zero_stage=2, micro_batch_size=4, grad_accum_steps=2))
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 2
    assert "optimizer" not in ds  # on CPU it would JIT-compile extra ops; we hand DeepSpeed torch's AdamW


def test_dataset_items_and_collate(tiny_dialogues, tiny_tokenizer):
    config = tiny_thinker_config(tiny_tokenizer)
    rows = [r for r in read_manifest(tiny_dialogues) if r["split"] == "train"]
    dataset = DialogueDataset(rows, tiny_dialogues, config, tiny_tokenizer)
    item = dataset[0]
    assert item["input_features"].shape == (80, config.mel_frames)
    assert item["response_ids"][-1].item() == config.eos_token_id
    assert config.user_emotions[item["user_emotion"]] == rows[0]["user_emotion"]
    batch = collate([dataset[0], dataset[1]])
    assert batch["input_features"].shape[0] == 2 and len(batch["response_ids"]) == 2
    moved = to_device(batch, "meta")  # every tensor, including each reply in the list, follows the engine
    assert moved["input_features"].is_meta and all(t.is_meta for t in moved["response_ids"])
    with pytest.raises(ValueError, match="no rows"):
        DialogueDataset([], tiny_dialogues, config, tiny_tokenizer)


def test_prepare_run_fills_tokenizer_ids(tiny_dialogues, tiny_tokenizer, tmp_path):
    config = prepare_run(tiny_dialogues, tmp_path, tiny_train_config(tiny_tokenizer))
    thinker = config.model.thinker_config
    assert thinker.vocab_size > 256 and thinker.eos_token_id >= 0
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["model"]["thinker_config"]["prompt_suffix_ids"] == thinker.prompt_suffix_ids
    assert (tmp_path / "tokenizer.json").is_file()


def test_failed_run_reports_the_log_tail(tiny_dialogues, tiny_tokenizer, tmp_path):
    """A rank that dies (here on a corrupt WAV) fails the run with the log's tail in the message."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dialogues, data)
    row = next(r for r in read_manifest(data) if r["split"] == "train")
    (data / row["user_wav"]).write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(TrainingError) as error:
        train(data, tmp_path / "run", tiny_train_config(tiny_tokenizer, max_steps=1))
    first_line = str(error.value).splitlines()[0]
    assert "AudioError" in first_line and row["user_wav"] in first_line  # the root cause, not torchrun's noise
    assert "train.log" in str(error.value)


def test_unknown_backend_names_the_choices(tmp_path):
    from components.training.backend import train_with_backend

    with pytest.raises(ValueError, match="'local'.*'trainjob'"):
        train_with_backend(tmp_path, tmp_path / "run", TrainConfig(), backend="slurm")


def test_stage_two_trains_the_talker_on_a_frozen_thinker(tiny_dialogues, tiny_tokenizer, tiny_text_model_dir, tmp_path):
    """The speech units, then stage 2 under DeepSpeed on a stage-1 model (the untrained tiny one: stage 1's own
    training is tested beside ZeRO): the export speaks, its thinker is the stage-1 thinker bit for bit, and the log
    carries the unit and mel losses."""
    from safetensors.torch import load_file

    from components.speech.config import EmotionOmniToken2WavConfig
    from components.speech.dataset_units import build_speech_units
    from components.speech.units import KMeansConfig
    from components.training.config import SpeechTrainConfig

    units = build_speech_units(
        tiny_dialogues,
        tmp_path / "units",
        EmotionOmniToken2WavConfig(num_units=16, hidden_size=32, griffin_lim_iters=4),
        KMeansConfig(iterations=20),
        restyled_per_reply=1,
        progress=False,
    )
    assert units.card["units_used"] > 8 and 0 < units.card["centroid_resynthesis_stoi"]["mean"] <= 1
    # The run's config sizes the talker; its thinker and unit vocabulary come from stage 1 and the units.
    config = SpeechTrainConfig(
        epochs=1, micro_batch_size=2, log_every_steps=1, max_steps=2, model=tiny_config(tiny_tokenizer, speech=True)
    )
    stage1 = tiny_text_model_dir
    result = train(tiny_dialogues, tmp_path / "stage2", config, init_model=stage1, speech_units=units.out_dir)
    # Stage 2 resumes too: the same run directory, two more steps on top of its step-2 checkpoint.
    config.max_steps = 4
    result = train(
        tiny_dialogues,
        tmp_path / "stage2",
        config,
        init_model=stage1,
        speech_units=units.out_dir,
        resume=True,
    )
    assert result.summary["resumed_from_step"] == 2 and result.summary["steps"] == 4
    rows = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # the log goes on where the checkpoint stood
    assert {"unit_loss", "mel_loss"} <= set(rows[0]) and all(r["unit_loss"] > 0 for r in rows)
    assert result.summary["stage"] == 2 and result.summary["trainable_parameters"] < result.summary["parameters"]
    train_rows = sum(r["split"] == "train" for r in read_manifest(tiny_dialogues))
    assert result.summary["train_samples"] == 2 * train_rows  # each reply, and its restyled twin

    model, _ = load_pretrained(result.model_dir)
    assert model.talker is not None and model.config.talker_config.num_units == 16
    before, after = load_file(stage1 / "model.safetensors"), load_file(result.model_dir / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # the frozen thinker came through unchanged
    assert torch.equal(model.token2wav.extractor.centroids, after["token2wav.extractor.centroids"])
    assert after["token2wav.extractor.centroids"].abs().sum() > 0  # the fitted units, not an empty codebook


def test_stage_two_needs_a_stage_one_model_and_units(tiny_dialogues, tmp_path):
    from components.training.config import SpeechTrainConfig

    with pytest.raises(ValueError, match="init_model"):
        prepare_run(tiny_dialogues, tmp_path, SpeechTrainConfig())
    with pytest.raises(FileNotFoundError, match="not an exported Emotion Omni model"):
        prepare_run(tiny_dialogues, tmp_path, SpeechTrainConfig(), init_model=tmp_path, speech_units=tmp_path)
