"""The exported model directory: the files save_pretrained writes and everything downstream (training from it,
registering, serving, the responder) needs, checked in one place.

Kept apart from pretrained.py, which loads the model and torch: the registry and serving check a directory without
either.
"""

from __future__ import annotations

from pathlib import Path

from components.contracts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE
from components.errors import InputNotFoundError

MODEL_DIR_FILES = (MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE)


def check_model_dir(model_dir: Path, *, fix: str, error: type[Exception] = InputNotFoundError) -> Path:
    """`model_dir` as a Path when it holds MODEL_DIR_FILES; else `error` naming what is missing, and `fix`."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        problem = "the directory does not exist" if not model_dir.exists() else "it is not a directory"
    else:
        missing = [name for name in MODEL_DIR_FILES if not (model_dir / name).is_file()]
        if not missing:
            return model_dir
        problem = f"it lacks {missing} (it has {sorted(p.name for p in model_dir.iterdir())})"
    raise error(
        f"{model_dir} is not an exported Emotion Omni model: {problem}; an exported model directory holds "
        f"{list(MODEL_DIR_FILES)}. Fix: {fix}"
    )
