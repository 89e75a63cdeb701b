"""The one on-disk model format: config.json + model.safetensors + tokenizer.json in a directory.

Training writes it, MLflow registers it, Triton serves it, evaluation and tests load it: one loading path.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from components.contracts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE
from components.model.configuration import EmotionOmniConfig
from components.model.modeling import EmotionOmniModel
from components.model.tokenizer import load_tokenizer

REQUIRED_FILES = (MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE)


def save_pretrained(model: EmotionOmniModel, tokenizer: Tokenizer, out_dir: Path,
                    metadata: dict | None = None) -> Path:
    """Write the model directory; `metadata` (e.g. training facts) goes into safetensors' header."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save(out_dir / MODEL_CONFIG_FILE)
    header = {k: str(v) for k, v in (metadata or {}).items()}
    # Clone: under DeepSpeed every parameter is a view into one flat buffer, which safetensors refuses.
    tensors = {name: model.state_dict()[name].detach().cpu().clone().contiguous()
               for name in _unique_names(model)}
    save_file(tensors, str(out_dir / MODEL_WEIGHTS_FILE), metadata=header)
    tokenizer.save(str(out_dir / TOKENIZER_FILE))
    return out_dir


def _unique_names(model: torch.nn.Module) -> list[str]:
    """State-dict names minus aliases of the same tensor (the LM's tied input/output embeddings)."""
    seen, names = set(), []
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        names.append(name)
    return names


def check_model_dir(model_dir: Path) -> Path:
    """Raise FileNotFoundError naming what is missing when `model_dir` is not an exported model."""
    model_dir = Path(model_dir)
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{model_dir} is not an exported Emotion Omni model: missing {missing}. Point at the directory "
            "that `omni train` exported (…/model) or download a registered version first")
    return model_dir


def load_pretrained(model_dir: Path, device: str = "cpu") -> tuple[EmotionOmniModel, Tokenizer]:
    """Rebuild the model from its directory; eval mode, on `device`."""
    model_dir = check_model_dir(model_dir)
    config = EmotionOmniConfig.load(model_dir / MODEL_CONFIG_FILE)
    # Weights come from our safetensors file: a pretrained path must not be re-read (and is cleared once
    # the model is built, so exported configs hold the architecture, not the path).
    config.speech_encoder_path = config.llm_path = None
    model = EmotionOmniModel(config)
    missing, unexpected = model.load_state_dict(load_file(str(model_dir / MODEL_WEIGHTS_FILE)), strict=False)
    missing = [name for name in missing if name in _unique_names(model)]  # tied aliases are not missing
    if missing or unexpected:
        raise ValueError(f"{model_dir / MODEL_WEIGHTS_FILE} does not match {MODEL_CONFIG_FILE}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}; re-export the model")
    return model.to(device).eval(), load_tokenizer(model_dir / TOKENIZER_FILE)


def read_config(model_dir: Path) -> dict:
    return json.loads((check_model_dir(model_dir) / MODEL_CONFIG_FILE).read_text())


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
