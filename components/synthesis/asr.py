"""The paper's ASR filter: a local Whisper transcribes each user turn, scored by word error rate against its text.

Opt-in: without a checkpoint path nothing runs and the result says why (the dataset card shows it). Loading is
local only (`local_files_only`), so nothing is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.contracts import SAMPLE_RATE
from components.errors import OmniError

NO_WHISPER_REASON = (
    "no whisper_path configured (FilterConfig.whisper_path / --whisper-path); ASR WER filter not computed"
)


class AsrError(OmniError, ValueError):
    """The Whisper checkpoint cannot be used, or a WER is undefined; the message names the setting and the fix."""


@dataclass
class AsrResult:
    """Whisper transcripts and word error rates per clip; `computed` False with a `reason` otherwise."""

    computed: bool
    reason: str | None = None
    hypotheses: list[str] = field(default_factory=list)
    wers: list[float] = field(default_factory=list)

    @property
    def mean_wer(self) -> float | None:
        return float(np.mean(self.wers)) if self.wers else None

    def to_json(self) -> dict:
        return {
            "computed": self.computed,
            "reason": self.reason,
            "n": len(self.wers),
            "mean_wer": None if self.mean_wer is None else round(self.mean_wer, 4),
        }


def normalize_words(text: str) -> list[str]:
    """Words for WER: lowercase, apostrophes dropped ("don't" = "dont"), other punctuation a word break."""
    text = re.sub(r"['\u2019]", "", text.lower())
    return re.sub(r"[^\w\s]|_", " ", text).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalize_words of both; may exceed 1."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        raise AsrError(f"reference {reference!r} has no words, so its WER is undefined; pass the spoken text")
    previous = list(range(len(hyp) + 1))  # edit distance row by row: previous[j] = cost of ref[:i] vs hyp[:j]
    for i, word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, heard in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard))
        previous = current
    return previous[-1] / len(ref)


def asr_wer(
    waves: Sequence[np.ndarray], texts: Sequence[str], whisper_path: str | None, *, batch_size: int = 8
) -> AsrResult:
    """Transcribe 16 kHz clips with the Whisper checkpoint at `whisper_path` (CPU) and score each against its text.

    None skips (AsrResult.computed False, reason NO_WHISPER_REASON). Loads with local_files_only, so nothing is
    downloaded; a multilingual checkpoint is told the language (English) and task. Whisper hears at most 30 s of
    each clip. Runs on the CPU: a small checkpoint (tiny.en, base.en) suits a filter; large ones are slow there.
    """
    if whisper_path is None:
        return AsrResult(False, reason=NO_WHISPER_REASON)
    if len(waves) != len(texts):
        raise AsrError(f"asr_wer needs one text per clip, got {len(waves)} clips and {len(texts)} texts")
    path = whisper_dir(whisper_path)
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor  # imported when used: ASR is opt-in

    try:
        model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).eval()
        processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise AsrError(
            f"FilterConfig.whisper_path (--whisper-path) = {whisper_path!r}: cannot load a Whisper "
            f"model and processor from it ({err}); point it at a directory saved by "
            "save_pretrained (e.g. a local copy of openai/whisper-base.en)"
        ) from None
    generation = {"max_new_tokens": min(128, model.config.max_target_positions - 4)}  # room for the 4 prompt tokens
    if getattr(model.generation_config, "lang_to_id", None):  # multilingual: do not let it detect a language
        generation.update(language="en", task="transcribe")
    hypotheses: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(waves), batch_size):
            batch = [np.asarray(w, dtype=np.float32) for w in waves[start : start + batch_size]]
            inputs = processor(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt")  # (B, mels, 3000)
            tokens = model.generate(inputs.input_features, **generation)
            hypotheses += [h.strip() for h in processor.batch_decode(tokens, skip_special_tokens=True)]
    return AsrResult(True, hypotheses=hypotheses, wers=[word_error_rate(t, h) for t, h in zip(texts, hypotheses)])


def whisper_dir(whisper_path: str) -> Path:
    path = Path(whisper_path).expanduser()
    if not (path / "config.json").is_file():
        found = "does not exist" if not path.exists() else "holds no config.json"
        raise AsrError(
            f"FilterConfig.whisper_path (--whisper-path) = {whisper_path!r} {found}; pass a local "
            "Whisper checkpoint directory (config.json, weights, tokenizer and preprocessor files), "
            "or leave it unset to skip the ASR WER filter"
        )
    return path
