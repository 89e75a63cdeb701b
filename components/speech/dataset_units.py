"""The speech-units step: turn a dataset's reply audio into the units the talker learns to say.

    summary = build_speech_units(Path("data/ds"), Path("data/units"))                  # local: fit k-means
    summary = build_speech_units(ds, out, cosyvoice2_config(Path("ckpt/CosyVoice2-0.5B")))  # CosyVoice2 tokens
    speech = load_speech_units(Path("data/units"))                                      # what stage 2 reads

Writes TOKEN2WAV_CONFIG_FILE (the token2wav config the units belong to), SPEECH_UNITS_FILE (one row per
dialogue with the reference reply's units, then one per restyled reply: the talker's training targets), the
restyled replies' WAVs (components.speech.restyle) and SPEECH_UNITS_CARD_FILE; for the local backend also
UNIT_EXTRACTOR_FILE (the k-means centroids) and, in the card, centroid-only resynthesis STOI on test replies:
the floor the trained unit -> mel model has to beat. CosyVoice2 brings its own speech tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from components.audio.io import load_wav
from components.contracts import (
    SAMPLE_RATE,
    SPEECH_UNITS_CARD_FILE,
    SPEECH_UNITS_FILE,
    TOKEN2WAV_CONFIG_FILE,
    UNIT_EXTRACTOR_FILE,
)
from components.errors import InputNotFoundError
from components.speech.config import EmotionOmniToken2WavConfig
from components.speech.mel import GriffinLim, MelSpectrogram
from components.speech.restyle import RestyledReply, restyle_replies
from components.speech.units import KMeansConfig, UnitExtractor, fit_unit_extractor
from components.synthesis import read_manifest

STOI_CLIPS = 8  # test replies resynthesised from centroids for the card (a floor, not the evaluation)


@dataclass
class SpeechUnitsSummary:
    out_dir: Path
    card: dict


@dataclass
class SpeechUnits:
    """A speech-units directory, read back: what stage 2 trains on."""

    root: Path
    config: EmotionOmniToken2WavConfig
    extractor: dict[str, torch.Tensor] | None  # k-means state (local backend); None for CosyVoice2
    units: dict[str, list[int]]  # manifest row id -> its reference reply's units
    restyled: list[tuple[RestyledReply, list[int]]] = field(default_factory=list)  # and their units


def build_speech_units(
    dataset_dir: Path,
    out_dir: Path,
    config: EmotionOmniToken2WavConfig | None = None,
    kmeans: KMeansConfig = KMeansConfig(),
    restyled_per_reply: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> SpeechUnitsSummary:
    """Units for every reply (train and test) and for `restyled_per_reply` restyled versions of each train reply;
    the local backend first fits k-means on the train split's reply audio."""
    start = time.time()
    config = config or EmotionOmniToken2WavConfig()
    config.validate()
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    rows = read_manifest(dataset_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    restyled = restyle_replies([r for r in rows if r["split"] == "train"], out_dir, restyled_per_reply, seed)
    clips = {r["id"]: dataset_dir / r["response_wav"] for r in rows} | {_key(r): out_dir / r.wav for r in restyled}
    card: dict = {"restyled_replies": len(restyled)}

    if config.backend == "cosyvoice2":
        from components.speech.backends import build_token2wav, cosyvoice2_config

        config = cosyvoice2_config(Path(config.cosyvoice2_path), config.cosyvoice2_prompt_wav)  # its vocabulary
        tokenizer = build_token2wav(config)
        units = _each(clips, lambda path: tokenizer.extract_units(load_wav(path)), "reply tokens", progress)
        card.update(backend="cosyvoice2", unit_rate_hz=tokenizer.unit_rate)
    else:
        mel = MelSpectrogram(config.mel)
        mels = _each(clips, lambda path: mel(load_wav(path)), "reply mels", progress)
        fit_start = time.time()
        extractor = fit_unit_extractor(
            [mels[r["id"]] for r in rows if r["split"] == "train"], config.num_units, config.frames_per_unit, kmeans
        )
        card.update(
            backend="local",
            unit_rate_hz=config.unit_rate,
            frames_per_unit=config.frames_per_unit,
            mel=config.mel.to_dict(),
            kmeans=dataclasses.asdict(kmeans),
            fit_seconds=round(time.time() - fit_start, 2),
            centroid_resynthesis_stoi=_centroid_stoi(extractor, config, dataset_dir, rows, mels),
        )
        units = {key: extractor(m).tolist() for key, m in mels.items()}
        save_file({k: v.contiguous() for k, v in extractor.state_dict().items()}, str(out_dir / UNIT_EXTRACTOR_FILE))

    (out_dir / TOKEN2WAV_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    with open(out_dir / SPEECH_UNITS_FILE, "w") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "units": units[r["id"]]}) + "\n")
        for r in restyled:
            f.write(json.dumps({"id": r.id, "emotion": r.emotion, "wav": r.wav, "units": units[_key(r)]}) + "\n")
    train_units = [u for r in rows if r["split"] == "train" for u in units[r["id"]]]
    card.update(
        num_units=config.num_units,
        train_replies=sum(r["split"] == "train" for r in rows),
        train_units=len(train_units),
        units_used=len(set(train_units)),
        wall_seconds=round(time.time() - start, 2),
    )
    (out_dir / SPEECH_UNITS_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return SpeechUnitsSummary(out_dir, card)


def _key(restyled: RestyledReply) -> str:
    return f"{restyled.id}/{restyled.emotion}"


def _each(clips: dict[str, Path], work: Callable, what: str, progress: bool) -> dict:
    return {
        key: work(path)
        for key, path in tqdm(clips.items(), desc=what, unit="clip", disable=not progress, mininterval=2.0)
    }


def _centroid_stoi(
    extractor: UnitExtractor, config: EmotionOmniToken2WavConfig, dataset_dir: Path, rows: list[dict], mels: dict
) -> dict:
    """STOI of test replies rebuilt from their units' centroids alone (Griffin-Lim), against the reference."""
    from pystoi import stoi

    vocoder = GriffinLim(config.mel, n_iter=config.griffin_lim_iters)
    scores = []
    for r in [r for r in rows if r["split"] == "test"][:STOI_CLIPS]:
        reference = load_wav(dataset_dir / r["response_wav"])
        audio = vocoder(extractor.centroid_mel(extractor(mels[r["id"]]))).numpy()
        n = min(len(audio), len(reference))
        scores.append(float(stoi(reference[:n], audio[:n], SAMPLE_RATE)))
    return (
        {"mean": round(float(np.mean(scores)), 4), "n": len(scores)}
        if scores
        else {"mean": None, "n": 0, "reason": "no test replies"}
    )


def load_speech_units(units_dir: Path) -> SpeechUnits:
    """Read a speech-units directory, refusing one that is incomplete."""
    units_dir = Path(units_dir)
    missing = [n for n in (TOKEN2WAV_CONFIG_FILE, SPEECH_UNITS_FILE) if not (units_dir / n).is_file()]
    if missing:
        raise InputNotFoundError(
            f"{units_dir} is not a speech-units directory: missing {missing}; run the speech-units "
            "step (components.speech.dataset_units.build_speech_units) first"
        )
    config = EmotionOmniToken2WavConfig.from_dict(json.loads((units_dir / TOKEN2WAV_CONFIG_FILE).read_text()))
    extractor = None
    if config.backend == "local":
        if not (units_dir / UNIT_EXTRACTOR_FILE).is_file():
            raise InputNotFoundError(
                f"{units_dir} lacks {UNIT_EXTRACTOR_FILE}, the k-means units' centroids: run the "
                "speech-units step again"
            )
        extractor = load_file(str(units_dir / UNIT_EXTRACTOR_FILE))
    speech = SpeechUnits(units_dir, config, extractor, {})
    for line in (units_dir / SPEECH_UNITS_FILE).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "emotion" in row:
            speech.restyled.append((RestyledReply(row["id"], row["emotion"], row["wav"]), row["units"]))
        else:
            speech.units[row["id"]] = row["units"]
    return speech
