"""`omni bench serve`: the one-at-a-time twin, the report, and a short soak, on the tiny model."""

from __future__ import annotations

import json
import re

import pytest

from components.contracts import TRITON_MODEL_NAME
from serving import bench
from serving.repository import TEMPLATE_DIR


def test_the_one_at_a_time_twin_is_emotion_omni_without_batching_on_one_instance():
    shipped = re.sub(r"count: \d+", "count: 3", (TEMPLATE_DIR / "config.pbtxt").read_text())
    twin = bench.one_at_a_time(shipped, bench.UNBATCHED_MODEL)
    assert "dynamic_batching" in shipped and "dynamic_batching" not in twin
    assert f'name: "{bench.UNBATCHED_MODEL}"' in twin and f'name: "{TRITON_MODEL_NAME}"' not in twin
    assert "count: 3" not in twin and re.search(r"instance_group\s*\[\s*\{[^}]*count: 1\n", twin)
    # Everything else is the same model: inputs, outputs, weights.
    assert twin.split("input [", 1)[1] == shipped.split("input [", 1)[1].replace("count: 3", "count: 1")
    with pytest.raises(ValueError, match="0 dynamic_batching blocks"):
        bench.one_at_a_time(twin, "again")


def test_summaries_count_errors_and_take_percentiles():
    samples = [bench.Sample(latency_s=0.1 * i, first_audio_s=0.05 * i, audio_s=1.0) for i in range(1, 11)]
    samples.append(bench.Sample(latency_s=0.01, first_audio_s=None, audio_s=0.0, error="ServingError: boom"))
    row = bench.summarize(bench.STREAMING, 4, samples, seconds=2.0, mean_batch=None)
    assert (row.requests, row.errors, row.first_error) == (11, 1, "ServingError: boom")
    assert row.requests_per_s == 5.0  # successes per wall second
    assert row.latency_p50_s == pytest.approx(0.55) and row.latency_p99_s == pytest.approx(0.991)
    assert row.first_audio_p50_s == pytest.approx(0.275) and row.rtf_p50 == pytest.approx(0.55)


@pytest.mark.triton
def test_bench_serve_measures_every_mode_and_soak_checks_memory(tiny_model_dir, tiny_dialogues, tmp_path, capsys):
    from omni.cli import bench_serve

    report = bench_serve(tiny_model_dir, tiny_dialogues, tmp_path / "bench", concurrency="1,3", requests=3)
    rows = {(r.mode, r.concurrency): r for r in report.rows}
    assert set(rows) == {(m, c) for m in bench.MODES for c in (1, 3)}
    for row in report.rows:
        assert row.errors == 0 and row.requests == max(3, 2 * row.concurrency) and row.requests_per_s > 0
        assert row.latency_p50_s <= row.latency_p95_s <= row.latency_p99_s
        if row.mode != bench.STREAMING:  # Triton's own counters: requests per execution
            assert row.mean_batch is not None and 1 <= row.mean_batch <= row.concurrency
    assert rows[(bench.BASELINE, 3)].mean_batch == 1  # the twin never batches
    assert rows[(bench.BASELINE, 1)].vs_baseline == 1.0 and rows[(bench.BATCHED, 3)].vs_baseline > 0
    saved = json.loads(report.json_path.read_text())
    assert len(saved["rows"]) == 6 and report.plot_path.stat().st_size > 10_000
    assert report.table_path.read_text().startswith("| mode | concurrency | req/s")
    assert "dynamic-batching" in capsys.readouterr().out

    soak = bench_serve(tiny_model_dir, tiny_dialogues, tmp_path / "soak", soak_minutes=0.15, soak_concurrency=2)
    assert soak.passed and soak.errors == 0 and soak.requests > 0
    assert len(soak.rss_series) >= 3 and soak.rss_start_mb > 50  # tritonserver plus a python stub
    assert (tmp_path / "soak" / bench.SOAK_PLOT_FILE).is_file()
    with pytest.raises(ValueError, match="at most|<= 120"):
        bench.soak(tiny_model_dir, [b""], tmp_path / "x", minutes=500)
