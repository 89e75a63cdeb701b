"""build_token2wav(): the Token2Wav a config names, and how each backend travels with a saved model.

"local" is an nn.Module whose weights live in the model's own safetensors. "cosyvoice2" is a frozen, external
checkpoint directory: an exported model carries a copy of it under COSYVOICE2_DIR, so a registered version is
complete by itself, and the config then names it relative to the model directory.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from components.speech.config import EmotionOmniToken2WavConfig

COSYVOICE2_DIR = "cosyvoice2"  # inside an exported model directory
PROMPT_FILE = "prompt.wav"  # the zero-shot voice prompt, carried beside the checkpoint


def _resolve(path: str, root: Path | None) -> Path:
    return Path(path) if Path(path).is_absolute() or root is None else Path(root) / path


def build_token2wav(config: EmotionOmniToken2WavConfig, root: Path | None = None):
    """The backend `config` names; a relative cosyvoice2_path resolves against `root` (the model directory)."""
    config.validate()
    if config.backend == "local":
        from components.speech.token2wav import EmotionOmniToken2Wav

        return EmotionOmniToken2Wav(config)
    from components.speech.cosyvoice2 import CosyVoice2Token2Wav

    prompt = _resolve(config.cosyvoice2_prompt_wav, root) if config.cosyvoice2_prompt_wav else None
    return CosyVoice2Token2Wav.from_pretrained(_resolve(config.cosyvoice2_path, root), prompt_wav=prompt)


def cosyvoice2_config(path: Path, prompt_wav: str = "") -> EmotionOmniToken2WavConfig:
    """The token2wav config of a CosyVoice2 checkpoint: its unit vocabulary and rate, read from cosyvoice.yaml."""
    from components.speech.cosyvoice2.checkpoint import check_checkpoint_dir, load_config

    path = check_checkpoint_dir(Path(path))
    checkpoint = load_config(path)
    return EmotionOmniToken2WavConfig(
        backend="cosyvoice2",
        num_units=checkpoint.flow.vocab_size,
        cosyvoice2_path=str(path.resolve()),
        cosyvoice2_prompt_wav=prompt_wav,
    )


def carry_checkpoint(
    config: EmotionOmniToken2WavConfig, root: Path | None, out_dir: Path
) -> EmotionOmniToken2WavConfig:
    """Copy a cosyvoice2 checkpoint into `out_dir`/COSYVOICE2_DIR and return the config naming it relatively;
    a local backend's config comes back unchanged (its weights are in the model's safetensors)."""
    if config.backend != "cosyvoice2":
        return config
    source, target = _resolve(config.cosyvoice2_path, root), Path(out_dir) / COSYVOICE2_DIR
    prompt = _resolve(config.cosyvoice2_prompt_wav, root) if config.cosyvoice2_prompt_wav else None
    if source.resolve() != target.resolve():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    if prompt is not None and prompt.resolve() != (target / PROMPT_FILE).resolve():
        shutil.copy2(prompt, target / PROMPT_FILE)
    return dataclasses.replace(
        config,
        cosyvoice2_path=COSYVOICE2_DIR,
        cosyvoice2_prompt_wav=f"{COSYVOICE2_DIR}/{PROMPT_FILE}" if prompt else "",
    )
