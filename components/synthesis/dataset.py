"""Step 1 of the pipeline: synthesize the emotional spoken-dialogue dataset.

Plans every dialogue from one seeded rng (labels, split, speaker, texts), then speaks the plans in shards on a
process pool (each dialogue runs the user's TTS engine and the assistant's espeak-ng, each through sox, then the
user turn's channel; shards.py), and writes the dataset directory:
MANIFEST_FILE, wavs/, DATASET_STATS_FILE and DATASET_CARD_FILE.

The build runs in a work directory beside `out_dir`, `.<name>.partial/`, and is moved into place at the end, so
`out_dir` is either a complete dataset or untouched. A build that stops (an error, Ctrl-C, a full disk, a killed
machine) keeps its finished shards there; running the same command again resumes it, and gives the same bytes
as a run that never stopped. `out_dir` may also be an S3 prefix (remote.py).

A cluster spreads one build over machines (the pipeline's ParallelFor): plan_parts runs the checks and names the
parts, synthesize_part speaks every parts-th shard into a directory of its own, and merge_parts gathers them,
filters and writes the card: the same bytes as synthesize_dataset.

    from components.synthesis import SynthesisConfig, synthesize_dataset
    summary = synthesize_dataset(SynthesisConfig(n=300, seed=0), "data/emotion-dialogues")
    summary = synthesize_dataset(SynthesisConfig(n=300, seed=0), "s3://minio:9000/datasets/emotion-dialogues")
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from components.audio import save_wav
from components.audio.channels import apply_channel, channel_to_json, sample_channel
from components.audio.io import decode_wav, encode_wav
from components.contracts import DATASET_CARD_FILE, DATASET_STATS_FILE, MANIFEST_FILE, SAMPLE_RATE, USER_EMOTIONS
from components.errors import ConfigError, OutputExistsError
from components.synthesis.card import CARD_PLOTS_DIR, dataset_stats, render_card
from components.synthesis.config import SynthesisConfig
from components.synthesis.engines import EngineSpeech
from components.synthesis.filters import apply_filters, read_turns
from components.synthesis.manifest import write_manifest
from components.synthesis.plan import DialoguePlan, plan_dialogues
from components.synthesis.remote import S3Output, is_s3_uri
from components.synthesis.shards import (
    FINGERPRINT_FILE,
    SHARD_DIR,
    SHARD_LAYOUT_VERSION,
    WAV_COLUMNS,
    Shard,
    ShardRun,
    SynthesisError,
    describe_difference,
    finished_names,
    finished_rows,
    locked,
    make_shards,
    prepare_work_dir,
    run_shards,
    stopped,
)
from components.synthesis.speech import EspeakSpeech
from components.synthesis.taxonomy import ASSISTANT_SPEAKER

if TYPE_CHECKING:
    from components.synthesis.llm import ChatDialogueWriter

WAV_DIR = "wavs"
# The LLM writer's cache outlives any one build, so a rebuild (or a resumed one) asks only for what it lacks.
LLM_CACHE_DIR = Path.home() / ".cache" / "omni" / "llm-dialogues"


@dataclass
class DatasetSummary:
    """What synthesize_dataset made; the full statistics are in DATASET_STATS_FILE."""

    out_dir: Path | str  # the dataset directory, or the s3:// URI it was uploaded to
    n: int
    counts: dict[str, dict[str, int]]  # label -> count for split, user/response emotion, domain, speaker
    audio_hours: float  # user and response audio together
    elapsed_s: float
    shards: int
    resumed_shards: int  # finished by an earlier, stopped run and not synthesized again
    shard_seconds: float = 0.0  # wall time of the parallel part: speaking the shards


def synthesize_dataset(
    config: SynthesisConfig,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    resume: bool = True,
    work_dir: str | Path | None = None,
) -> DatasetSummary:
    """Synthesize `config.n` dialogues into `out_dir`: a directory, which must be empty or absent, or an
    `s3://host:port/bucket/prefix` / `s3://bucket/prefix` URI (components/storage/s3.py), which must be empty.

    With `overwrite`, a previous dataset in `out_dir` (it holds MANIFEST_FILE) is replaced; anything else that is
    not empty is refused so a typo cannot delete unrelated files. A partial build of the same settings in the
    work directory is resumed (`resume=False` starts it over); one of other settings is refused. The work
    directory is `.<name>.partial/` beside a local `out_dir`, `<tmp>/omni-synthesis/<fingerprint>/` for S3,
    or `work_dir`.
    """
    started = time.perf_counter()
    # Every check that can fail fast runs before anything is written: the target, then the binaries (each
    # names its package), then the work directory's settings.
    remote = S3Output(out_dir, overwrite) if is_s3_uri(out_dir) else None
    if remote is None:
        out_dir = Path(out_dir)
        _check_out_dir(out_dir, overwrite)
    voices, writer = _preflight(config)
    fingerprint = _fingerprint(config)
    if work_dir is not None:
        work = Path(work_dir)
    elif remote is not None:
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        work = Path(tempfile.gettempdir()) / "omni-synthesis" / digest
    else:
        work = out_dir.parent / f".{out_dir.name}.partial"
    with locked(work):
        prepare_work_dir(work, fingerprint, resume)
        shards = _written(make_shards(plan_dialogues(config), config.shard_size), config, writer, progress)
        elsewhere = remote.prepare(work, shards, fingerprint, resume) if remote else {}
        try:
            upload = functools.partial(remote.upload_shard, work) if remote else None  # each shard as it finishes
            shards_started = time.perf_counter()
            run = run_shards(
                functools.partial(_speak, voices, config=config),
                shards,
                work,
                workers=config.workers,
                progress=progress,
                elsewhere=elsewhere,
                on_finished=upload,
            )
            shard_seconds = time.perf_counter() - shards_started
            if remote is not None and elsewhere:
                remote.fetch_wavs(work)
            rows, stats, plots = _write_dataset_files(work, run.rows, config, voices, _text_source(config, writer))
            if remote is not None:
                remote.publish(work, [row[c] for row in rows for c in WAV_COLUMNS] + plots)
            else:
                _publish(work, out_dir)
        except BaseException as error:
            kept = f"{work} and {remote.partial}" if remote else str(work)
            raise stopped(error, len(finished_names(work) | set(elsewhere)), len(shards), kept, work) from error
        # The manifest is now the one record of the rows. The shard state goes only after the dataset is in place,
        # so a crash in between leaves a complete dataset and a stray folder, never a work directory without state.
        shutil.rmtree(work if remote else out_dir / SHARD_DIR)
    return DatasetSummary(
        out_dir=remote.uri if remote else out_dir,
        n=len(rows),
        counts=stats["counts"],
        audio_hours=stats["audio_hours"]["total"],
        elapsed_s=round(time.perf_counter() - started, 2),
        shards=run.shards,
        resumed_shards=run.resumed_shards,
        shard_seconds=round(shard_seconds, 2),
    )


def plan_parts(config: SynthesisConfig, parts: int) -> list[int]:
    """The parts a build fanned out over `parts` machines has (fewer when it has fewer shards), after every check
    that can fail fast: the TTS binaries, the filters' paths and the LLM endpoint. A pipeline runs this once,
    before any part starts, then one synthesize_part per index (KFP's ParallelFor), then merge_parts."""
    if not isinstance(parts, int) or parts < 1:
        raise ConfigError(f"parts={parts!r} must be an int >= 1: the machines the build is spread over")
    _preflight(config)
    return list(range(min(parts, -(-config.n // config.shard_size))))


def synthesize_part(
    config: SynthesisConfig, out_dir: str | Path, *, part: int, parts: int, progress: bool = True
) -> ShardRun:
    """Speak part `part` of `parts` of the build (every `parts`-th shard from shard `part`) into `out_dir`, a work
    directory of its own (shards/ + wavs/) that merge_parts reads. Run again on the same directory, it resumes."""
    if not 0 <= part < parts:
        raise ConfigError(f"part={part!r} must be in [0, parts={parts!r})")
    voices, writer = _preflight(config)
    out_dir = Path(out_dir)
    with locked(out_dir):
        prepare_work_dir(out_dir, _fingerprint(config))
        shards = make_shards(plan_dialogues(config), config.shard_size)[part::parts]
        shards = _written(shards, config, writer, progress)
        try:
            return run_shards(
                functools.partial(_speak, voices, config=config),
                shards,
                out_dir,
                workers=config.workers,
                progress=progress,
            )
        except BaseException as error:
            raise stopped(error, len(finished_names(out_dir)), len(shards), str(out_dir), out_dir) from error


def merge_parts(
    config: SynthesisConfig,
    part_dirs: list[str | Path],
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetSummary:
    """Gather the shards of synthesize_part's directories into the dataset `out_dir` (a directory, as for
    synthesize_dataset), then filter and write the manifest and card. The bytes are those of a one-machine build.
    Every shard must be in some part; a part of other settings is refused."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    voices, writer = _preflight(config, check_llm=False)  # the writer only names its model in the card
    fingerprint = _fingerprint(config)
    shards = make_shards(plan_dialogues(config), config.shard_size)
    found: dict[str, tuple[Path, list[dict]]] = {}
    for part_dir in map(Path, part_dirs):
        _check_part(part_dir, fingerprint)
        for shard in shards:
            rows = None if shard.name in found else finished_rows(part_dir, shard)
            if rows is not None:
                found[shard.name] = (part_dir, rows)
    missing = [shard.name for shard in shards if shard.name not in found]
    if missing:
        raise SynthesisError(
            f"{len(missing)} of {len(shards)} shards are finished in none of the {len(part_dirs)} "
            f"parts (first: {', '.join(missing[:3])}): run the parts that hold them (every part of "
            "plan_parts) to the end, then merge again"
        )
    work = out_dir.parent / f".{out_dir.name}.partial"
    with locked(work):
        prepare_work_dir(work, fingerprint)
        rows = []
        for shard in tqdm(shards, desc="gathering parts", unit="shard", disable=not progress, mininterval=2.0):
            part_dir, shard_rows = found[shard.name]
            for path in (row[column] for row in shard_rows for column in WAV_COLUMNS):
                _link_or_copy(part_dir / path, work / path)
            rows += shard_rows
        rows, stats, _ = _write_dataset_files(work, rows, config, voices, _text_source(config, writer))
        _publish(work, out_dir)
        shutil.rmtree(out_dir / SHARD_DIR)
    return DatasetSummary(
        out_dir=out_dir,
        n=len(rows),
        counts=stats["counts"],
        audio_hours=stats["audio_hours"]["total"],
        elapsed_s=round(time.perf_counter() - started, 2),
        shards=len(shards),
        resumed_shards=len(shards),
    )


def _check_part(part_dir: Path, fingerprint: dict) -> None:
    path = part_dir / SHARD_DIR / FINGERPRINT_FILE
    if not path.is_file():
        raise SynthesisError(f"{part_dir} holds no {SHARD_DIR}/{FINGERPRINT_FILE}, so it is no synthesize_part output")
    theirs, ours = json.loads(path.read_text(encoding="utf-8")), json.loads(json.dumps(fingerprint))  # tuples: lists
    if theirs != ours:
        raise SynthesisError(
            f"{part_dir} is a part of a build with other settings "
            f"({describe_difference(theirs, ours)}); merge only the parts of this build"
        )


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where both are on one filesystem (a local pipeline run: no bytes copied), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _fingerprint(config: SynthesisConfig) -> dict:
    """What decides the bytes of a build, for prepare_work_dir: every setting but `workers`, which does not
    (so a resumed run may use another machine's core count), and the shard layout."""
    settings = dataclasses.asdict(config)
    del settings["workers"]
    return {"shard_layout": SHARD_LAYOUT_VERSION, "config": settings}


def _preflight(config: SynthesisConfig, check_llm: bool = True) -> tuple[_Voices, ChatDialogueWriter | None]:
    """The voices and the LLM writer, after every check that can fail before anything is written: the TTS binaries
    (each names its package), the filters' paths and, with `check_llm`, the LLM endpoint."""
    voices = _Voices(
        user=EngineSpeech(config.user_speech, engines=config.engines), assistant=EspeakSpeech(config.speech)
    )
    if config.filters is not None:
        config.filters.check_paths()
    return voices, _dialogue_writer(config, check=check_llm)


def _dialogue_writer(config: SynthesisConfig, check: bool = True) -> ChatDialogueWriter | None:
    """The LLM writer for text_backend "llm", checked against its endpoint now (before any shard starts)."""
    if config.text_backend != "llm":
        return None
    # Imported here, like write_card_plots below: importing components.synthesis (the model config does, for the
    # assistant's voice) must not load requests, jsonschema, matplotlib and librosa into a serving process.
    from components.synthesis.llm import ChatDialogueWriter, LLMConfig

    writer = ChatDialogueWriter(LLMConfig.from_env(cache_dir=LLM_CACHE_DIR))
    if check:
        writer.check()
    return writer


def _text_source(config: SynthesisConfig, writer: ChatDialogueWriter | None) -> str:
    return config.text_backend if writer is None else f"llm:{writer.config.model}"


def _written(
    shards: list[Shard], config: SynthesisConfig, writer: ChatDialogueWriter | None, progress: bool
) -> list[Shard]:
    """The shards with the LLM writer's texts in their plans (unchanged for the template grammar). The writer's cache
    is on disk, so a resumed build asks the endpoint only for what it lacks."""
    if writer is None:
        return shards
    plans = [plan for shard in shards for plan in shard.plans]
    texts = iter(
        writer.write_many(
            [(p.domain, p.user_emotion, p.response_emotion, config.seed * 1_000_003 + p.index) for p in plans],
            progress=progress,
        )
    )
    return [
        Shard(
            shard.name,
            tuple(dataclasses.replace(plan, user_text=u, response_text=r) for plan, (u, r) in zip(shard.plans, texts)),
        )
        for shard in shards
    ]


def _write_dataset_files(
    root: Path, rows: list[dict], config: SynthesisConfig, voices: _Voices, text_source: str
) -> tuple[list[dict], dict, list[str]]:
    """Filter the rows (their dropped wavs are deleted), then write MANIFEST_FILE, DATASET_STATS_FILE, the card and
    its plots in `root`; returns the kept rows, the stats and the plots' paths relative to `root`."""
    report = None
    if config.filters is not None:
        report = apply_filters(rows, read_turns(rows, root), config.filters, seed=config.seed)
        for dropped in report.dropped:
            for column in WAV_COLUMNS:
                (root / dropped.row[column]).unlink(missing_ok=True)
        rows = report.kept
    write_manifest(root, rows)
    stats = dataset_stats(
        rows,
        seed=config.seed,
        generator={
            "n": config.n,
            "test_fraction": config.test_fraction,
            "unseen_voice_fraction": config.unseen_voice_fraction,
            "held_out_speakers": list(config.held_out_speakers),
            "text": text_source,
            "user_engines": voices.user.describe(),
            "user_speech": dataclasses.asdict(config.user_speech),
            "speech": voices.assistant.describe(),
            "assistant_speaker": ASSISTANT_SPEAKER,
            "channels": dataclasses.asdict(config.channels) if config.channels else None,
        },
        filters=report.summary() if report else None,
    )
    (root / DATASET_STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    from components.synthesis.card_plots import write_card_plots  # see _dialogue_writer

    plots = write_card_plots(rows, root, root / CARD_PLOTS_DIR, filter_report=report)
    plots = {name: path.relative_to(root).as_posix() for name, path in plots.items()}
    examples = [next(row for row in rows if row["user_emotion"] == emotion) for emotion in USER_EMOTIONS]
    (root / DATASET_CARD_FILE).write_text(render_card(stats, examples, plots), encoding="utf-8")
    return rows, stats, list(plots.values())


@dataclass(frozen=True)
class _Voices:
    user: EngineSpeech  # any engine's voice, speaker-randomised
    assistant: EspeakSpeech  # the one reply voice the speech generator learns


def _speak(voices: _Voices, plan: DialoguePlan, root: Path, config: SynthesisConfig) -> dict:
    # Jitter comes from (seed, row) rather than a shared rng, so it does not depend on thread order.
    rng = np.random.default_rng([config.seed, plan.index])
    user = voices.user.synthesize(plan.user_text, plan.user_emotion, plan.speaker, rng)
    response = voices.assistant.synthesize(plan.response_text, plan.response_emotion, ASSISTANT_SPEAKER, rng)
    user, channel = degrade_user_turn(user, plan.index, config)
    user_wav, response_wav = f"{WAV_DIR}/{plan.id}_user.wav", f"{WAV_DIR}/{plan.id}_response.wav"
    save_wav(root / user_wav, user)
    save_wav(root / response_wav, response)
    return {
        "id": plan.id,
        "split": plan.split,
        "domain": plan.domain,
        "speaker": plan.speaker,
        "user_emotion": plan.user_emotion,
        "user_text": plan.user_text,
        "user_wav": user_wav,
        "user_duration_s": round(len(user) / SAMPLE_RATE, 3),
        "user_channel": channel_to_json(channel),
        "response_emotion": plan.response_emotion,
        "response_text": plan.response_text,
        "response_wav": response_wav,
        "response_duration_s": round(len(response) / SAMPLE_RATE, 3),
    }


def degrade_user_turn(user: np.ndarray, index: int, config: SynthesisConfig) -> tuple[np.ndarray, list[dict]]:
    """Row `index`'s user turn through its seeded channel (unchanged, [] when config.channels is None)."""
    if config.channels is None:
        return user, []
    # Its own rng stream: turning channels on leaves the prosody draws as they were.
    channel = sample_channel(np.random.default_rng([config.seed, index, 1]), config.channels)
    # From the clean turn as a clean dataset stores it (16-bit): a lossy codec amplifies even rounding differences,
    # and the record must remake the clip from the stored clean turn exactly.
    return apply_channel(decode_wav(encode_wav(user)), channel), channel


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished dataset into `out_dir` (absent, empty, or a previous dataset _check_out_dir allowed)."""
    if not out_dir.exists():
        shutil.move(staging, out_dir)  # a rename, or a copy when `work_dir` is on another filesystem
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
        raise OutputExistsError(f"out_dir {out_dir} is a file; pass a directory path for the dataset")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(
            f"out_dir {out_dir} is not empty; pass a new directory, or overwrite=True (--overwrite) "
            "to replace a previous dataset there"
        )
    if not (out_dir / MANIFEST_FILE).is_file():
        raise OutputExistsError(
            f"refusing to overwrite {out_dir}: it holds no {MANIFEST_FILE}, so it is not a previous dataset; "
            "pick another directory or delete it yourself"
        )
