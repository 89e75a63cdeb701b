"""`omni bench synthesize` on a tiny build: both worker counts, every stage timed, the files and the extrapolation."""

import json

from components.synthesis import SynthesisConfig
from components.synthesis.bench import PLOT_FILE, RESULT_FILE, STAGES, TABLE_FILE, bench_synthesis
from components.synthesis.filters import FilterConfig


def test_bench_compares_worker_counts_and_times_every_stage(tmp_path):
    config = SynthesisConfig(n=18, seed=7, shard_size=6, filters=FilterConfig(emotion_consistency="off"))
    report = bench_synthesis(tmp_path, config, workers=(1, 2), stage_sample=3, progress=False)
    assert [b["workers"] for b in report["builds"]] == [1, 2] and report["builds"][0]["speedup"] == 1.0
    assert all(b["dialogues"] == 18 and b["dialogues_per_s"] > 0 for b in report["builds"])
    assert all(0 < b["shard_s"] < b["wall_s"] for b in report["builds"]) and report["builds"][0]["shard_speedup"] == 1.0
    stages = report["stage_seconds_per_dialogue"]
    assert list(stages) == list(STAGES) and all(stages[s] > 0 for s in ("user TTS", "assistant TTS", "writing"))
    extrapolation = report["extrapolation"]
    assert extrapolation["dialogues"] == 200_000 and 0 < extrapolation["parallel_efficiency"] <= 1
    assert extrapolation["total_hours"] >= extrapolation["shards_hours"] > 0
    assert json.loads((tmp_path / RESULT_FILE).read_text()) == report
    assert "| 2 |" in (tmp_path / TABLE_FILE).read_text() and "200,000 dialogues" in (tmp_path / TABLE_FILE).read_text()
    assert (tmp_path / PLOT_FILE).read_bytes().startswith(b"\x89PNG")
