"""`omni bench train`: what DeepSpeed costs or buys, measured in one run against torch DDP.

The same model (the stage-1 thinker a run of `config` would train) on the same data for the same steps, under:
single-process torch, torch DDP x2, and DeepSpeed ZeRO-1/2/3 x2 (bench_worker.py, one torchrun per mode, one mode
at a time so they never share the cores). Reported per mode: samples/s, tokens/s, peak RSS (all ranks), and each
ratio to DDP, the baseline a ZeRO stage must match; as a table (stdout and Markdown), JSON and a PNG.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from components.errors import ConfigError, OmniError
from components.plotting import new_figure, save_figure
from components.training.bench_worker import MODES
from components.training.config import TrainConfig
from components.training.launch import free_port, worker_env
from components.training.prepare import prepare_run

BASELINE = "ddp"
RESULT_FILE, TABLE_FILE, PLOT_FILE = "bench_train.json", "bench_train.md", "bench_train.png"


class BenchError(OmniError, RuntimeError):
    """A benchmark mode failed; the message carries the tail of its output."""


@dataclass
class TrainBench:
    rows: list[dict]  # one per mode, in the order run, with ratios to the baseline
    table: str  # Markdown
    json_path: Path
    table_path: Path
    plot_path: Path


def bench_train(
    dataset_dir: Path,
    out_dir: Path,
    config: TrainConfig | None = None,
    modes: Sequence[str] = MODES,
    steps: int = 20,
    warmup: int = 3,
    nproc: int = 2,
) -> TrainBench:
    """Run every mode in `modes` for `steps` timed steps (after `warmup`) and write the report into `out_dir`."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ConfigError(f"bench modes {unknown or '(none)'}: choose from {', '.join(MODES)}")
    if steps < 1 or warmup < 0:
        raise ConfigError("bench steps must be >= 1 and warmup >= 0")
    config = config or TrainConfig()
    out_dir = Path(out_dir).resolve()
    run_dir = out_dir / "run"
    prepare_run(Path(dataset_dir), run_dir, config)  # the tokenizer and model config every mode shares
    rows = []
    for mode in modes:
        world = 1 if mode == "torch" else nproc
        result = out_dir / f"{mode}.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={world}",
            "--nnodes=1",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "-m",
            "components.training.bench_worker",
            "--run-dir",
            str(run_dir),
            "--dataset",
            str(Path(dataset_dir).resolve()),
            "--mode",
            mode,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--out",
            str(result),
        ]
        print(f"bench train: {mode} x{world}, {warmup} warm-up + {steps} timed steps ...", file=sys.stderr, flush=True)
        start = time.time()
        proc = subprocess.run(cmd, env=worker_env(world), capture_output=True, text=True)
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            raise BenchError(f"bench mode {mode} failed (exit {proc.returncode}); its output ends:\n{tail}")
        row = json.loads(result.read_text())
        row["wall_s"] = round(time.time() - start, 1)  # with process start-up and DeepSpeed's op build
        rows.append(row)
    _add_ratios(rows)
    table = format_table(rows, config, steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_FILE).write_text(json.dumps({"steps": steps, "warmup": warmup, "rows": rows}, indent=2) + "\n")
    (out_dir / TABLE_FILE).write_text(table + "\n")
    plot = plot_bench(rows, out_dir / PLOT_FILE)
    return TrainBench(rows, table, out_dir / RESULT_FILE, out_dir / TABLE_FILE, plot)


def _add_ratios(rows: list[dict]) -> None:
    base = next((r for r in rows if r["mode"] == BASELINE), None)
    for row in rows:
        for key in ("samples_per_s", "tokens_per_s", "peak_rss_bytes"):
            row[f"{key}_vs_{BASELINE}"] = round(row[key] / base[key], 3) if base else None


def format_table(rows: list[dict], config: TrainConfig, steps: int) -> str:
    thinker = config.model.thinker_config
    head = (
        f"Training throughput, {steps} timed steps, micro-batch {rows[0]['micro_batch_size']} per rank, "
        f"LM hidden {thinker.hidden_size} x {thinker.text_config.num_hidden_layers} layers"
    )
    lines = [
        head,
        "",
        f"| mode | ranks | samples/s | tokens/s | peak RSS (GB, all ranks) | samples/s vs {BASELINE} "
        f"| RSS vs {BASELINE} | final loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    gpu = any(r.get("peak_gpu_bytes") for r in rows)
    if gpu:  # where a GPU ran the modes: its peak memory and the model FLOPs utilisation too
        lines[2] = lines[2][: -len(" final loss |")] + " peak GPU memory (GB) | MFU | final loss |"
        lines[3] += "---|---|"
    for r in rows:
        ratio = r[f"samples_per_s_vs_{BASELINE}"]
        rss_ratio = r[f"peak_rss_bytes_vs_{BASELINE}"]
        cells = [
            r["mode"],
            str(r["world_size"]),
            f"{r['samples_per_s']:.1f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['peak_rss_bytes'] / 1e9:.2f}",
            "not measured" if ratio is None else f"{ratio:.2f}x",
            "not measured" if rss_ratio is None else f"{rss_ratio:.2f}x",
        ]
        if gpu:
            cells += [f"{r['peak_gpu_bytes'] / 1e9:.1f}", "not computed" if r["mfu"] is None else f"{r['mfu']:.1%}"]
        lines.append("| " + " | ".join(cells + [str(r["final_loss"])]) + " |")
    return "\n".join(lines)


def plot_bench(rows: list[dict], path: Path) -> Path:
    """Samples/s and peak RSS per mode, side by side, the baseline's bar outlined."""
    figure = new_figure(9, 3.6)
    labels = [f"{r['mode']}\nx{r['world_size']}" for r in rows]
    for index, (key, title, scale) in enumerate(
        (("samples_per_s", "samples / s (higher is better)", 1.0), ("peak_rss_bytes", "peak RSS, all ranks (GB)", 1e-9))
    ):
        axes = figure.add_subplot(1, 2, index + 1)
        bars = axes.bar(labels, [r[key] * scale for r in rows], color="#4C72B0")
        for bar, row in zip(bars, rows):
            if row["mode"] == BASELINE:
                bar.set_edgecolor("black")
                bar.set_linewidth(2)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle(f"omni bench train (baseline outlined: {BASELINE})")
    return save_figure(figure, path)
