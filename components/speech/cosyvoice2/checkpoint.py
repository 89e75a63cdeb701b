"""The CosyVoice2 checkpoint directory contract: which files, what each is, and loading weights strictly.

A checkpoint directory holds the reference's five files under the reference's names (CosyVoice2-0.5B as
published on ModelScope `iic/CosyVoice2-0.5B` and Hugging Face `FunAudioLLM/CosyVoice2-0.5B`; download it on a
machine with network access and copy the directory over, nothing here downloads):

    ckpt/cosyvoice.yaml            hyperparameters (hyperpyyaml)
    ckpt/flow.pt                   CausalMaskedDiffWithXvec state dict
    ckpt/hift.pt                   HiFTGenerator state dict
    ckpt/speech_tokenizer_v2.onnx  16 kHz audio (128-bin log-mel) -> speech tokens
    ckpt/campplus.onnx             16 kHz audio (80-bin fbank) -> 192-d speaker embedding

Other files there (llm.pt, the Qwen tokenizer, TensorRT plans) are the text-to-speech LLM's and are ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from components.errors import InputNotFoundError
from components.speech.cosyvoice2.config import CosyVoice2Config
from components.speech.cosyvoice2.errors import CheckpointError
from components.speech.cosyvoice2.hyperyaml import load_hyperyaml

CONFIG_FILE = "cosyvoice.yaml"
FLOW_FILE = "flow.pt"
HIFT_FILE = "hift.pt"
SPEECH_TOKENIZER_FILE = "speech_tokenizer_v2.onnx"
CAMPPLUS_FILE = "campplus.onnx"
RENAMED_CONFIG_FILE = "cosyvoice2.yaml"  # what later CosyVoice2-0.5B downloads call cosyvoice.yaml

# File name -> what it is; the order is the order errors report them in.
REQUIRED_FILES: dict[str, str] = {
    CONFIG_FILE: "the model hyperparameters (hyperpyyaml)",
    FLOW_FILE: "the flow-matching token -> mel model's weights (CausalMaskedDiffWithXvec)",
    HIFT_FILE: "the HiFT mel -> 24 kHz waveform vocoder's weights (HiFTGenerator)",
    SPEECH_TOKENIZER_FILE: "the speech tokenizer (audio -> speech tokens), ONNX",
    CAMPPLUS_FILE: "the CAM++ speaker encoder (audio -> 192-d speaker embedding), ONNX",
}

_WHERE_TO_GET = (
    "the CosyVoice2-0.5B release (ModelScope iic/CosyVoice2-0.5B or Hugging Face "
    "FunAudioLLM/CosyVoice2-0.5B); download it where there is network access and copy the whole "
    "directory here"
)


def check_checkpoint_dir(path: str | Path) -> Path:
    """Return `path` as a Path when it holds every REQUIRED_FILES entry; FileNotFoundError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise InputNotFoundError(
            f"CosyVoice2 checkpoint directory {path} does not exist (or is not a directory); "
            f"it must hold {', '.join(REQUIRED_FILES)} from {_WHERE_TO_GET}"
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        lines = "; ".join(f"{name} ({REQUIRED_FILES[name]})" for name in missing)
        hint = ""
        if CONFIG_FILE in missing and (path / RENAMED_CONFIG_FILE).is_file():
            hint = (
                f" This directory has {RENAMED_CONFIG_FILE}, the name later releases give the same file: "
                f"copy or link it to {CONFIG_FILE}."
            )
        raise InputNotFoundError(
            f"CosyVoice2 checkpoint {path} is missing {lines}.{hint} Get them from {_WHERE_TO_GET}"
        )
    return path


def load_config(path: str | Path) -> CosyVoice2Config:
    """Parse and validate `<path>/cosyvoice.yaml` into a CosyVoice2Config."""
    return CosyVoice2Config.from_yaml(load_hyperyaml(Path(path) / CONFIG_FILE))


def load_weights(module: torch.nn.Module, file: Path, strip_prefix: str = "") -> None:
    """Load a state-dict file into `module` as strictly as `load_state_dict(strict=True)`, with clear errors.

    `strip_prefix` is removed from keys first (HiFT weights saved from the reference's HiFiGan training wrapper
    carry "generator."; its loader strips it the same way). Missing or unexpected keys, a shape mismatch, or a
    file that is not a state dict raise CheckpointError naming the file and the keys.
    """
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises unrelated types (pickle, zip, EOF) for bad files
        raise CheckpointError(
            f"{file} could not be read as a torch state dict ({type(err).__name__}: {err}); "
            f"re-download it from {_WHERE_TO_GET}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{file} holds a {type(state).__name__}, not a state dict of tensors; save "
            "`module.state_dict()`, as the reference's checkpoints are"
        )
    if strip_prefix:
        state = {k.removeprefix(strip_prefix): v for k, v in state.items()}
    try:
        # strict=False so the key lists come back to be reported; anything off is refused just below.
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches raise even when not strict
        detail = " ".join(str(err).split())  # torch's message spans lines; keep the error on one
        raise CheckpointError(
            f"{file} does not fit the model cosyvoice.yaml describes: {detail} The YAML and "
            "the weights must come from the same checkpoint"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{file} does not match the model cosyvoice.yaml describes: "
            f"missing keys {_preview(result.missing_keys)}, unexpected keys "
            f"{_preview(result.unexpected_keys)}. The YAML and the weights must come from the "
            "same CosyVoice2 checkpoint"
        )


def _preview(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"
