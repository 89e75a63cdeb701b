"""The one on-disk model format: config.json + model.safetensors + tokenizer.json in a directory.

The model saves and loads its own config and weights (`EmotionOmniForConditionalGeneration.save_pretrained` /
`from_pretrained`); this module adds the tokenizer beside them, as a transformers processor would, and checks a
directory before anything loads it. Training writes it, MLflow registers it, Triton serves it, evaluation and
tests load it: one loading path.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from components.contracts import TOKENIZER_FILE
from components.export.model_dir import check_model_dir
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.model.tokenizer import load_tokenizer


def save_pretrained(
    model: EmotionOmniForConditionalGeneration, tokenizer: Tokenizer, out_dir: Path, metadata: dict | None = None
) -> Path:
    """Write the model directory; `metadata` (e.g. training facts) goes into safetensors' header."""
    out_dir = model.save_pretrained(Path(out_dir), metadata=metadata)
    tokenizer.save(str(out_dir / TOKENIZER_FILE))
    return out_dir


def load_pretrained(model_dir: Path, device: str = "cpu") -> tuple[EmotionOmniForConditionalGeneration, Tokenizer]:
    """Rebuild the model and its tokenizer from their directory; eval mode, on `device`."""
    model_dir = check_model_dir(
        model_dir,
        fix="point at the directory `omni train` exported (.../model), or download a registered version first",
    )
    model = EmotionOmniForConditionalGeneration.from_pretrained(model_dir, device=device)
    return model, load_tokenizer(model_dir / TOKENIZER_FILE)
