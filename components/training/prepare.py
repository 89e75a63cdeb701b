"""prepare_run(): everything the ranks must agree on, written into the run directory before they start.

Stage 1 trains the tokenizer on the train split and fills the model config from it (and from pretrained
checkpoints' architectures, when given). Stage 2 copies the stage-1 model and the speech units into RUN/init
(so ranks on other nodes read them from the shared run directory) and composes the speaking model's config:
the stage-1 thinker's, a talker sized by the run's config and fitted to that thinker, and the units' token2wav.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from components.contracts import MODEL_CONFIG_FILE, TOKENIZER_FILE, TRAIN_CONFIG_FILE
from components.errors import ConfigError
from components.export.model_dir import check_model_dir
from components.model.configuration import EmotionOmniConfig, EmotionOmniTalkerConfig
from components.model.tokenizer import apply_tokenizer, load_tokenizer, train_tokenizer
from components.speech.backends import carry_checkpoint
from components.speech.dataset_units import load_speech_units
from components.synthesis import read_manifest
from components.training.config import INIT_DIR, INIT_MODEL, INIT_UNITS, TrainConfig
from components.training.model_setup import (
    check_lora_targets,
    check_pretrained_paths,
    emotion_encoder_architecture,
)


def prepare_run(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainConfig:
    """Write train_config.json and tokenizer.json (+ RUN/init for stage 2) into `run_dir`; return the config.
    `resume` keeps a tokenizer the run directory already holds (its checkpoints' embeddings are indexed by it)."""
    config.validate()
    check_pretrained_paths(config)
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == "train"]
    if not rows:
        raise ConfigError(f"{dataset_dir} has no train split rows: synthesize again with a larger --n")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.stage == 1:
        _prepare_thinker(rows, run_dir, config, resume)
    else:
        _prepare_speech(run_dir, config, init_model, speech_units)
    config.model.validate()
    check_lora_targets(config)
    config.save(run_dir / TRAIN_CONFIG_FILE)
    return config


def _prepare_thinker(rows: list[dict], run_dir: Path, config: TrainConfig, resume: bool) -> None:
    if resume and (run_dir / TOKENIZER_FILE).is_file():
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    elif config.llm_path and (Path(config.llm_path) / TOKENIZER_FILE).is_file():
        tokenizer = load_tokenizer(Path(config.llm_path) / TOKENIZER_FILE)  # a pretrained LM reads its own ids
    else:
        tokenizer = train_tokenizer(
            (t for r in rows for t in (r["user_text"], r["response_text"])), vocab_size=config.tokenizer_vocab_size
        )
    thinker = config.model.thinker_config
    if config.emotion_encoder_path:
        thinker = emotion_encoder_architecture(thinker, Path(config.emotion_encoder_path))
    pretrained = thinker.with_pretrained_architectures(config.speech_encoder_path or None, config.llm_path or None)
    if (pretrained.n_mels, pretrained.window_seconds) != (
        thinker.n_mels,
        thinker.window_seconds,
    ) and config.emotion_encoder_path:
        raise ConfigError(
            f"the emotion encoder at {config.emotion_encoder_path} hears {thinker.n_mels} mel bins over "
            f"{thinker.window_seconds} s, the speech encoder at {config.speech_encoder_path} "
            f"{pretrained.n_mels} over {pretrained.window_seconds} s: they share one front end; use "
            "an emotion encoder trained with this speech encoder"
        )
    thinker = pretrained
    config.model = dataclasses.replace(config.model, thinker_config=apply_tokenizer(thinker, tokenizer))
    tokenizer.save(str(run_dir / TOKENIZER_FILE))


def _prepare_speech(run_dir: Path, config: TrainConfig, init_model: Path | None, speech_units: Path | None) -> None:
    if init_model is None or speech_units is None:
        raise ConfigError(
            "stage 2 trains on a stage-1 model and speech units: pass init_model (the stage-1 "
            "model directory) and speech_units (the speech-units step's directory)"
        )
    check_model_dir(init_model, fix="pass init_model: the stage-1 model directory `omni train` exported (.../model)")
    stage1 = EmotionOmniConfig.load(Path(init_model) / MODEL_CONFIG_FILE)
    token2wav = load_speech_units(speech_units).config  # checks the directory before anything is copied
    init = run_dir / INIT_DIR
    if init.exists():
        shutil.rmtree(init)
    shutil.copytree(init_model, init / INIT_MODEL)
    shutil.copytree(speech_units, init / INIT_UNITS)
    shutil.copy2(init / INIT_MODEL / TOKENIZER_FILE, run_dir / TOKENIZER_FILE)

    thinker = stage1.thinker_config
    # The run's config may size the talker and the unit -> mel model; what must fit the thinker and the units
    # (widths, emotion space, unit vocabulary, mel analysis) is taken from them, not from the run's config.
    talker = config.model.talker_config or EmotionOmniTalkerConfig()
    talker = dataclasses.replace(
        talker, thinker_hidden_size=thinker.hidden_size, emotion_dim=thinker.emotion_dim, num_units=token2wav.num_units
    )
    requested = config.model.token2wav_config
    if requested is not None:
        token2wav = dataclasses.replace(
            requested, mel=token2wav.mel, num_units=token2wav.num_units, frames_per_unit=token2wav.frames_per_unit
        )
    # A CosyVoice2 checkpoint travels into RUN/init too (every rank must read it); named relative to RUN/init.
    token2wav = carry_checkpoint(dataclasses.replace(token2wav, emotion_dim=thinker.emotion_dim), None, init)
    config.model = EmotionOmniConfig(thinker_config=thinker, talker_config=talker, token2wav_config=token2wav)
