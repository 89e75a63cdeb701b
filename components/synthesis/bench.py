"""`omni bench synthesize`: dialogues/s with 1 and 2 worker processes in one run, where the time goes, and what
200k dialogues would take.

The same dataset (config, seed, n) is built once per worker count, after an untimed warm-up build, one build at a
time so they never share the cores, each from scratch. Then a sample of dialogues is run stage by stage in this
process, timing each stage the way a worker runs it: text (planning, or the LLM writer), the user's TTS engine with
the emotion transform and speaker randomisation, the assistant's TTS, the channel augmentation, and writing the
WAVs. The filters and the card run once over the whole dataset after the shards, so they are timed on the first
build. Reported as a table (stdout and Markdown), JSON and a PNG.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.audio import save_wav
from components.errors import ConfigError
from components.plotting import new_figure, save_figure
from components.synthesis.card_plots import write_card_plots
from components.synthesis.config import SynthesisConfig
from components.synthesis.dataset import degrade_user_turn, synthesize_dataset
from components.synthesis.engines import EngineSpeech
from components.synthesis.filters import apply_filters, read_turns
from components.synthesis.manifest import read_manifest
from components.synthesis.plan import plan_dialogues
from components.synthesis.speech import EspeakSpeech
from components.synthesis.taxonomy import ASSISTANT_SPEAKER

RESULT_FILE, TABLE_FILE, PLOT_FILE = "bench_synthesize.json", "bench_synthesize.md", "bench_synthesize.png"
TARGET_DIALOGUES, TARGET_CORES = 200_000, 16  # the paper's set, on one 16-core synthesis node
STAGES = ("text", "user TTS", "assistant TTS", "augmentation", "writing", "filters", "card")
_PER_DIALOGUE = STAGES[:5]  # run inside the workers, in parallel; the rest run once, after the shards


def bench_synthesis(
    out_dir: Path,
    config: SynthesisConfig | None = None,
    workers: Sequence[int] = (1, 2),
    stage_sample: int = 30,
    progress: bool = True,
) -> dict:
    """Build `config` (default: 120 dialogues) with each worker count, time the stages on `stage_sample`
    dialogues, and write the report into `out_dir`; returns the report's JSON."""
    config = config or SynthesisConfig(n=120, shard_size=20)
    if not workers or min(workers) < 1:
        raise ConfigError(f"workers={list(workers)}: give worker counts >= 1, e.g. 1,2")
    if stage_sample < 1:
        raise ConfigError(f"stage_sample={stage_sample}: time at least one dialogue")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builds = []
    with tempfile.TemporaryDirectory(prefix="omni-bench-synthesize-") as scratch:
        # A small untimed build first: the first build otherwise also pays for cold caches and imports, which
        # made 2 workers look 2.1x faster than 1.
        synthesize_dataset(
            dataclasses.replace(config, n=18, shard_size=18, workers=1),
            Path(scratch) / "warm-up",
            progress=False,
            resume=False,
        )
        for count in workers:
            target = Path(scratch) / f"workers-{count}"
            started = time.perf_counter()
            summary = synthesize_dataset(
                dataclasses.replace(config, workers=count), target, progress=progress, resume=False
            )
            wall = time.perf_counter() - started
            builds.append(
                {
                    "workers": count,
                    "dialogues": summary.n,
                    "wall_s": round(wall, 2),
                    "dialogues_per_s": round(config.n / wall, 3),
                    "shard_s": summary.shard_seconds,
                    "shard_dialogues_per_s": round(config.n / summary.shard_seconds, 3),
                }
            )
        stages = stage_seconds(config, Path(scratch) / f"workers-{workers[0]}", stage_sample)
    for build in builds:
        build["speedup"] = round(build["dialogues_per_s"] / builds[0]["dialogues_per_s"], 2)
        build["shard_speedup"] = round(build["shard_dialogues_per_s"] / builds[0]["shard_dialogues_per_s"], 2)
    report = {
        "config": {
            "n": config.n,
            "seed": config.seed,
            "shard_size": config.shard_size,
            "engines": list(config.engines),
            "channels": config.channels is not None,
            "filters": config.filters is not None,
            "text_backend": config.text_backend,
        },
        "builds": builds,
        "stage_seconds_per_dialogue": stages,
        "extrapolation": extrapolate(builds, stages),
    }
    (out_dir / RESULT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / TABLE_FILE).write_text(format_table(report) + "\n", encoding="utf-8")
    plot_bench(report, out_dir / PLOT_FILE)
    return report


def stage_seconds(config: SynthesisConfig, dataset_dir: Path, sample: int) -> dict[str, float]:
    """Seconds per dialogue for each of STAGES: the per-dialogue stages on the first `sample` plans, run here
    one stage at a time; the filters and the card over the built dataset in `dataset_dir`."""
    started = time.perf_counter()
    plans = plan_dialogues(config)
    seconds = dict.fromkeys(STAGES, 0.0)
    seconds["text"] = (time.perf_counter() - started) * len(plans[:sample]) / len(plans)  # planning writes the text
    user, assistant = EngineSpeech(config.user_speech, engines=config.engines), EspeakSpeech(config.speech)
    with tempfile.TemporaryDirectory(prefix="omni-bench-stages-") as scratch:
        for plan in plans[:sample]:
            rng = np.random.default_rng([config.seed, plan.index])
            clock = time.perf_counter()
            user_wave = user.synthesize(plan.user_text, plan.user_emotion, plan.speaker, rng)
            seconds["user TTS"] += time.perf_counter() - clock
            clock = time.perf_counter()
            reply = assistant.synthesize(plan.response_text, plan.response_emotion, ASSISTANT_SPEAKER, rng)
            seconds["assistant TTS"] += time.perf_counter() - clock
            clock = time.perf_counter()
            user_wave, _ = degrade_user_turn(user_wave, plan.index, config)
            seconds["augmentation"] += time.perf_counter() - clock
            clock = time.perf_counter()
            save_wav(Path(scratch) / "user.wav", user_wave)
            save_wav(Path(scratch) / "reply.wav", reply)
            seconds["writing"] += time.perf_counter() - clock
        per_dialogue = {stage: value / len(plans[:sample]) for stage, value in seconds.items()}
        rows = read_manifest(dataset_dir)
        if config.filters is not None:
            clock = time.perf_counter()
            apply_filters(rows, read_turns(rows, dataset_dir), config.filters, seed=config.seed)
            per_dialogue["filters"] = (time.perf_counter() - clock) / len(rows)
        clock = time.perf_counter()
        write_card_plots(rows, dataset_dir, Path(scratch) / "card")
        per_dialogue["card"] = (time.perf_counter() - clock) / len(rows)
    return {stage: round(value, 4) for stage, value in per_dialogue.items()}


def extrapolate(builds: list[dict], stages: dict[str, float]) -> dict:
    """Wall time for TARGET_DIALOGUES on TARGET_CORES worker processes: the shards at the 1-worker shard rate, times
    the cores, times the parallel efficiency measured here (the largest build's shard speedup per worker), plus the
    filters and the card, which run once after the shards on one core."""
    one = builds[0]
    largest = max(builds, key=lambda b: b["workers"])
    efficiency = (
        min(1.0, largest["shard_speedup"] / (largest["workers"] / one["workers"])) if largest is not one else 1.0
    )
    shards_s = TARGET_DIALOGUES / (one["shard_dialogues_per_s"] / one["workers"] * TARGET_CORES * efficiency)
    after_s = TARGET_DIALOGUES * (stages["filters"] + stages["card"])
    return {
        "dialogues": TARGET_DIALOGUES,
        "cores": TARGET_CORES,
        "parallel_efficiency": round(efficiency, 3),
        "shards_hours": round(shards_s / 3600, 2),
        "filters_and_card_hours": round(after_s / 3600, 2),
        "total_hours": round((shards_s + after_s) / 3600, 2),
    }


def format_table(report: dict) -> str:
    c, e = report["config"], report["extrapolation"]
    lines = [
        f"Synthesis of {c['n']} dialogues (seed {c['seed']}, shards of {c['shard_size']}, engines "
        f"{', '.join(c['engines'])}, channels {'on' if c['channels'] else 'off'}, filters "
        f"{'on' if c['filters'] else 'off'}, text {c['text_backend']}):",
        "",
        "| workers | whole build s | dialogues/s | vs first | shards s | shard dialogues/s | vs first |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {b['workers']} | {b['wall_s']:.1f} | {b['dialogues_per_s']:.2f} | {b['speedup']:.2f}x | "
        f"{b['shard_s']:.1f} | {b['shard_dialogues_per_s']:.2f} | {b['shard_speedup']:.2f}x |"
        for b in report["builds"]
    ]
    lines += [
        "",
        "The whole build adds the serial tail (filters, card, manifest) to the shards; the shards are the "
        "part more workers speed up.",
    ]
    lines += ["", "| stage | ms per dialogue | where |", "|---|---:|---|"]
    lines += [
        f"| {stage} | {seconds * 1000:.1f} | {'each worker' if stage in _PER_DIALOGUE else 'once, after'} |"
        for stage, seconds in report["stage_seconds_per_dialogue"].items()
    ]
    lines += [
        "",
        f"{e['dialogues']:,} dialogues on {e['cores']} cores at the measured parallel efficiency "
        f"{e['parallel_efficiency']:.2f}: shards {e['shards_hours']:.1f} h + filters and card "
        f"{e['filters_and_card_hours']:.1f} h (one core) = {e['total_hours']:.1f} h.",
    ]
    return "\n".join(lines)


def plot_bench(report: dict, path: Path) -> Path:
    figure = new_figure(9.6, 3.4)
    rate, stages = figure.subplots(1, 2, width_ratios=(1, 2))
    builds = report["builds"]
    positions = np.arange(len(builds))
    rate.bar(positions - 0.2, [b["dialogues_per_s"] for b in builds], 0.4, color="#4a7ab5", label="whole build")
    rate.bar(positions + 0.2, [b["shard_dialogues_per_s"] for b in builds], 0.4, color="#9cb8d9", label="shards")
    for i, b in enumerate(builds):
        rate.text(
            i + 0.2, b["shard_dialogues_per_s"], f"{b['shard_speedup']:.2f}x", ha="center", va="bottom", fontsize=9
        )
    rate.set_xticks(positions, [str(b["workers"]) for b in builds])
    rate.legend(fontsize=8)
    rate.set_xlabel("worker processes")
    rate.set_ylabel("dialogues/s")
    rate.set_title("Throughput")
    per = report["stage_seconds_per_dialogue"]
    names = list(per)
    stages.barh(
        names[::-1],
        [per[s] * 1000 for s in names[::-1]],
        color=["#4a7ab5" if s in _PER_DIALOGUE else "#e08a3c" for s in names[::-1]],
    )
    stages.set_xlabel("ms per dialogue (blue: in each worker; orange: once, after the shards)")
    stages.set_title("Where the time goes")
    return save_figure(figure, path)
