"""`omni bench train` on tiny data: every mode runs for real (torchrun, gloo, DeepSpeed), one table, JSON and plot.

Speed itself is not asserted (that is the benchmark's job, on the demo's data); what is asserted is that each mode
trained the model it claims to, and that the ratios are computed against the DDP row measured in the same run.
"""

from __future__ import annotations

import json

import pytest

from components.training import TrainConfig
from components.training.bench import bench_train
from omni.cli import main
from tests.conftest import tiny_config


def test_bench_runs_each_mode_and_reports_ratios_to_ddp(tiny_dialogues, tiny_tokenizer, tmp_path, capsys):
    config = TrainConfig(model=tiny_config(tiny_tokenizer), micro_batch_size=2, tokenizer_vocab_size=400)
    report = bench_train(tiny_dialogues, tmp_path, config, modes=("ddp", "zero3"), steps=2, warmup=1)
    rows = {r["mode"]: r for r in report.rows}
    assert [r["world_size"] for r in report.rows] == [2, 2]  # torch x1 is one more torchrun; CI time
    assert rows["ddp"]["samples_per_s_vs_ddp"] == 1.0
    for row in report.rows:
        assert row["samples"] == 2 * 2 * row["world_size"] and row["samples_per_s"] > 0
        assert row["peak_rss_bytes"] > 100e6  # torch alone is more than that: a real process was measured
        assert row["mfu"] is None and row["device"] == "cpu"  # no known CPU peak: MFU not computed, not 0
        assert row["samples_per_s_vs_ddp"] == pytest.approx(
            row["samples_per_s"] / rows["ddp"]["samples_per_s"], rel=1e-2
        )
    # ZeRO-3 reports the whole model, not a rank's slice of it.
    assert rows["zero3"]["parameters"] == rows["ddp"]["parameters"]
    assert json.loads(report.json_path.read_text())["rows"][0]["mode"] == "ddp"
    assert "| zero3 | 2 |" in report.table and "1.00x" in report.table
    assert report.plot_path.stat().st_size > 10_000


def test_bench_refuses_unknown_modes(tmp_path, capsys):
    assert (
        main(["bench", "train", "--dataset", str(tmp_path), "--out", str(tmp_path / "b"), "--modes", "ddp,zero4"]) == 2
    )
    assert "bench modes ['zero4']: choose from torch, ddp, zero1, zero2, zero3" in capsys.readouterr().err
