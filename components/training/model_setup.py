"""The model a rank trains, and the plain model it exports.

Stage 1 builds the thinker, loads pretrained parts from local checkpoints (Whisper encoder, Qwen2 LM, and the
emotion encoder of an exported Emotion Omni model), freezes what the config says and, with `lora_r > 0`, puts LoRA
adapters (peft) on the frozen LM as the paper does. Stage 2 loads the stage-1 thinker, freezes it and trains the
talker (and the local token2wav). Exporting merges the adapters into the LM, so serving loads a plain model.

The `check_*` functions run in the launcher, before any rank starts, so a bad path or LoRA target costs seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file

from components.contracts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE
from components.errors import ConfigError
from components.export.model_dir import check_model_dir
from components.model.configuration import EmotionOmniConfig, EmotionOmniThinkerConfig
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.speech.dataset_units import SpeechUnits, load_speech_units
from components.training.config import INIT_DIR, TrainConfig, init_paths

_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def build_model(config: TrainConfig, run_dir: Path) -> tuple[EmotionOmniForConditionalGeneration, SpeechUnits | None]:
    """The model each rank trains, with pretrained parts loaded and frozen parts frozen; stage 2 also returns the
    speech units to train on."""
    model = EmotionOmniForConditionalGeneration(config.model, root=Path(run_dir) / INIT_DIR)
    if config.stage == 1:
        thinker = model.thinker
        thinker.load_pretrained_parts(config.speech_encoder_path or None, config.llm_path or None)
        if config.emotion_encoder_path:
            thinker.emotion_encoder.load_state_dict(_emotion_encoder_weights(Path(config.emotion_encoder_path)))
        for flag, part in (
            (config.freeze_speech_encoder, thinker.speech_encoder),
            (config.freeze_emotion_encoder, thinker.emotion_encoder),
            (config.freeze_llm or config.lora_r > 0, thinker.llm),
        ):
            if flag:
                part.requires_grad_(False)
        if config.gradient_checkpointing:  # recompute the LM's activations in backward: memory for compute
            thinker.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.lora_r:
            _add_lora(model, config)
        return model, None
    init_model, init_units = init_paths(run_dir)
    weights = load_file(str(init_model / MODEL_WEIGHTS_FILE))
    thinker = {k.removeprefix("thinker."): v for k, v in weights.items() if k.startswith("thinker.")}
    missing, unexpected = model.thinker.load_state_dict(thinker, strict=False)
    tied = {"llm.lm_head.weight"} if config.model.thinker_config.text_config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ConfigError(
            f"{init_model} does not hold this thinker: missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {unexpected[:5]}; pass the model directory stage 1 exported"
        )
    model.thinker.requires_grad_(False)  # the paper's stage 2: the LM (and everything before it) is frozen
    speech = load_speech_units(init_units)
    if model.trains_token2wav:  # the local token2wav speaks the units its own extractor made
        model.token2wav.extractor.load_state_dict(speech.extractor)
    return model, speech


def _add_lora(model: EmotionOmniForConditionalGeneration, config: TrainConfig) -> None:
    from peft import LoraConfig, get_peft_model

    model.thinker.llm = get_peft_model(model.thinker.llm, LoraConfig(**config.lora_settings(), bias="none"))


def param_groups(model: EmotionOmniForConditionalGeneration, config: TrainConfig) -> list[dict]:
    """Two learning rates as in the paper: the LLM's (its LoRA adapters, with LoRA), and the rest's (encoders,
    adapters, heads, talker). Each group is named, for the logs and the metrics."""
    llm, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (llm if name.startswith("thinker.llm.") else rest).append(param)
    groups = [
        {"name": "llm", "params": llm, "lr": config.lr_llm},
        {"name": "modules", "params": rest, "lr": config.lr_modules},
    ]
    return [g for g in groups if g["params"]]


def export_model(
    config: TrainConfig, run_dir: Path, state: dict[str, torch.Tensor]
) -> EmotionOmniForConditionalGeneration:
    """A plain model holding the trained weights (`state`: the gathered state dict); LoRA adapters merged into the
    LM's weights, so what is saved has no peft in it."""
    model = EmotionOmniForConditionalGeneration(config.model, root=Path(run_dir) / INIT_DIR)
    if config.lora_r:
        _add_lora(model, config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {name for name in missing if name.endswith("lm_head.weight")}  # saved once, as the input embedding
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"the gathered weights do not fit the model: missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    if config.lora_r:
        model.thinker.llm = model.thinker.llm.merge_and_unload()
    return model.eval()


# --- checks the launcher runs before any rank starts ---


def check_pretrained_paths(config: TrainConfig) -> None:
    """Raise ConfigError naming the setting and the fix when a pretrained path is not a local checkpoint."""
    for setting, path in (("speech_encoder_path", config.speech_encoder_path), ("llm_path", config.llm_path)):
        if not path:
            continue
        folder = Path(path)
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any((folder / name).is_file() for name in _HF_WEIGHTS):
            missing.append("weights (model.safetensors or pytorch_model.bin)")
        if missing:
            raise ConfigError(
                f"TrainConfig.{setting}={path!r} is not a local transformers checkpoint: missing "
                f"{', '.join(missing)}. Point it at a directory written by save_pretrained "
                "(nothing is downloaded: HF_HUB_OFFLINE=1)"
            )
    if config.emotion_encoder_path:
        _emotion_encoder_weights(Path(config.emotion_encoder_path))
    if config.lora_r and not config.llm_path:
        raise ConfigError(
            "TrainConfig.lora_r > 0 adapts a pretrained LM: set llm_path to a local Qwen2 checkpoint "
            "(or lora_r=0 to train the LM fully)"
        )


def check_lora_targets(config: TrainConfig) -> None:
    """Every LoRA target must name at least one linear layer of the LM; built on the meta device (no memory)."""
    if not config.lora_r:
        return
    from transformers import Qwen2ForCausalLM

    with torch.device("meta"):
        llm = Qwen2ForCausalLM(config.model.thinker_config.qwen2_config())
    linear = sorted(
        {name.rsplit(".", 1)[-1] for name, module in llm.named_modules() if isinstance(module, torch.nn.Linear)}
    )
    unmatched = [t for t in config.lora_target_modules if t not in linear]
    if unmatched:
        raise ConfigError(
            f"TrainConfig.lora_target_modules {unmatched} match no module of the LM; its linear "
            f"layers are {linear} (the paper adapts all of them but lm_head)"
        )


def _emotion_encoder_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The emotion encoder of an exported Emotion Omni model (our stand-in for a pretrained emotion2vec)."""
    prefix = "thinker.emotion_encoder."
    check_model_dir(
        model_dir,
        error=ConfigError,
        fix="set TrainConfig.emotion_encoder_path to a trained Emotion Omni "
        "model's directory (.../model), whose emotion encoder it takes",
    )
    weights = load_file(str(model_dir / MODEL_WEIGHTS_FILE))
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def emotion_encoder_architecture(thinker: EmotionOmniThinkerConfig, model_dir: Path) -> EmotionOmniThinkerConfig:
    """`thinker` with the emotion encoder's shape (and the front end it hears) of the model at `model_dir`."""
    source = EmotionOmniConfig.load(Path(model_dir) / MODEL_CONFIG_FILE).thinker_config
    return dataclasses.replace(
        thinker,
        emotion_encoder_dim=source.emotion_encoder_dim,
        emotion_encoder_layers=source.emotion_encoder_layers,
        n_mels=source.n_mels,
        window_seconds=source.window_seconds,
    )
