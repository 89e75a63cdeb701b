"""Step 1 of the pipeline: synthesize the emotional spoken-dialogue dataset.

Plans every dialogue from one seeded rng (labels, split, speaker, texts), then speaks the plans in a
thread pool (each task is two espeak-ng | sox subprocess pairs), and writes the dataset directory:
MANIFEST_FILE, wavs/, DATASET_STATS_FILE and DATASET_CARD_FILE. The directory is built beside
`out_dir` and moved into place at the end, so `out_dir` is either a complete dataset or untouched.

    from components.synthesis import SynthesisConfig, synthesize_dataset
    summary = synthesize_dataset(SynthesisConfig(n=300, seed=0), "data/emotion-dialogues")
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from components.audio import save_wav
from components.audio.channels import apply_channel, channel_to_json, sample_channel
from components.contracts import DATASET_CARD_FILE, DATASET_STATS_FILE, MANIFEST_FILE, SAMPLE_RATE, USER_EMOTIONS
from components.synthesis.card import dataset_stats, render_card
from components.synthesis.config import SynthesisConfig
from components.synthesis.manifest import write_manifest
from components.synthesis.plan import DialoguePlan, plan_dialogues
from components.synthesis.speech import EspeakSpeech
from components.synthesis.taxonomy import ASSISTANT_SPEAKER

WAV_DIR = "wavs"


@dataclass
class DatasetSummary:
    """What synthesize_dataset made; the full statistics are in DATASET_STATS_FILE."""

    out_dir: Path
    n: int
    counts: dict[str, dict[str, int]]   # label -> count for split, user/response emotion, domain, speaker
    audio_hours: float                  # user and response audio together
    elapsed_s: float


def synthesize_dataset(
    config: SynthesisConfig, out_dir: str | Path, *, overwrite: bool = False, progress: bool = True
) -> DatasetSummary:
    """Synthesize `config.n` dialogues into `out_dir`, which must be empty or absent.

    With `overwrite`, a previous dataset in `out_dir` (a directory holding MANIFEST_FILE) is replaced;
    any other non-empty directory is refused so a typo cannot delete unrelated files.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    tts = EspeakSpeech(config.speech)  # fails on missing binaries before anything is written
    plans = plan_dialogues(config)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        rows = _speak_all(tts, plans, staging, config, progress)
        write_manifest(staging, rows)
        stats = dataset_stats(rows, seed=config.seed, generator={
            "n": config.n, "test_fraction": config.test_fraction,
            "speech": tts.describe(), "assistant_speaker": ASSISTANT_SPEAKER,
            "channels": dataclasses.asdict(config.channels) if config.channels else None,
        })
        (staging / DATASET_STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        examples = [next(row for row in rows if row["user_emotion"] == emotion) for emotion in USER_EMOTIONS]
        (staging / DATASET_CARD_FILE).write_text(render_card(stats, examples), encoding="utf-8")
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DatasetSummary(
        out_dir=out_dir, n=len(rows), counts=stats["counts"],
        audio_hours=stats["audio_hours"]["total"], elapsed_s=round(time.perf_counter() - started, 2),
    )


def _speak_all(tts: EspeakSpeech, plans: list[DialoguePlan], root: Path, config: SynthesisConfig,
               progress: bool) -> list[dict]:
    """Speak every plan in a thread pool; rows come back in plan order whatever the scheduling."""
    (root / WAV_DIR).mkdir()
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        futures = [pool.submit(_speak, tts, plan, root, config) for plan in plans]
        try:
            bar = tqdm(futures, desc="synthesizing speech", unit="dialogue", disable=not progress, mininterval=2.0)
            return [future.result() for future in bar]
        except BaseException:
            for future in futures:
                future.cancel()  # do not keep synthesizing a dataset that is being thrown away
            raise


def _speak(tts: EspeakSpeech, plan: DialoguePlan, root: Path, config: SynthesisConfig) -> dict:
    # Jitter comes from (seed, row) rather than a shared rng, so it does not depend on thread order.
    rng = np.random.default_rng([config.seed, plan.index])
    user = tts.synthesize(plan.user_text, plan.user_emotion, plan.speaker, rng)
    response = tts.synthesize(plan.response_text, plan.response_emotion, ASSISTANT_SPEAKER, rng)
    channel = []
    if config.channels is not None:  # its own stream: turning channels on leaves the prosody draws as they were
        channel = sample_channel(np.random.default_rng([config.seed, plan.index, 1]), config.channels)
        user = apply_channel(user, channel)
    user_wav, response_wav = f"{WAV_DIR}/{plan.id}_user.wav", f"{WAV_DIR}/{plan.id}_response.wav"
    save_wav(root / user_wav, user)
    save_wav(root / response_wav, response)
    return {
        "id": plan.id, "split": plan.split, "domain": plan.domain, "speaker": plan.speaker,
        "user_emotion": plan.user_emotion, "user_text": plan.user_text, "user_wav": user_wav,
        "user_duration_s": round(len(user) / SAMPLE_RATE, 3), "user_channel": channel_to_json(channel),
        "response_emotion": plan.response_emotion, "response_text": plan.response_text,
        "response_wav": response_wav, "response_duration_s": round(len(response) / SAMPLE_RATE, 3),
    }


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished dataset into `out_dir` (absent, empty, or a previous dataset _check_out_dir allowed)."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    # Fill the existing directory rather than replace it: it may be a mounted volume, which cannot be removed.
    for child in out_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in staging.iterdir():
        shutil.move(child, out_dir / child.name)
    staging.rmdir()


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir {out_dir} is a file; pass a directory path for the dataset")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"out_dir {out_dir} is not empty; pass a new directory, or overwrite=True (--overwrite) "
            "to replace a previous dataset there"
        )
    if not (out_dir / MANIFEST_FILE).is_file():
        raise FileExistsError(
            f"refusing to overwrite {out_dir}: it holds no {MANIFEST_FILE}, so it is not a previous dataset; "
            "pick another directory or delete it yourself"
        )
