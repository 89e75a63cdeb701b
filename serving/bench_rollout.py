"""`omni bench rollout`: the zero-downtime figure of a local deploy, measured with callers sending all along.

One tritonserver on 127.0.0.1 (loopback only: the benchmark never drives a server it did not start) serves a fresh
repository holding two versions side by side, v1 pinned and serving. One SteadyLoad sends the same spoken turn
throughout three phases:

    before   `baseline_s` of plain serving by v1
    during   serving.deploy_local moves the server to v2 (candidate load, smoke request, swap, unload, metrics window)
    after    `baseline_s` of serving by v2

Reported per phase: requests, failed, slow (answered, but later than `slow_s`: by default twice the before phase's
p95), latency p50/p95/max, starts delayed by a full load and the longest such wait (the load never piles up, so a
stalled server shows there and in fewer requests), and which versions answered; the during/before p95 ratio; the
deploy's own steps. Written as rollout.json, rollout.md and rollout.png (each request's latency over time, failures
marked, the deploy's steps shaded). A zero-downtime deploy shows failed == 0 in every phase.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict
from pathlib import Path

from components.contracts import TRITON_MODEL_NAME
from components.deploy.config import DeployConfig
from components.deploy.outcome import DEPLOYED, DeployOutcome
from components.errors import ConfigError
from components.plotting import new_figure, save_figure
from serving.client import EmotionOmniClient
from serving.launcher import TritonConfig, TritonServer
from serving.repository import MODELS, build_model_repository
from serving.smoke import probe_wav
from serving.steady_load import LoadReport, SteadyLoad

RESULT_FILE, TABLE_FILE, PLOT_FILE = "rollout.json", "rollout.md", "rollout.png"
PHASES = ("before", "during", "after")
SLOW_FACTOR = 2.0  # slow_s defaults to this many times the before phase's p95: a caller notices a doubled wait
OLD_VERSION, NEW_VERSION = 1, 2


def build_rollout_repository(model_dir: Path, candidate_model_dir: Path | None, repo_dir: Path) -> Path:
    """A served repository with v1 (`model_dir`) and v2 (`candidate_model_dir`, else the same weights), v1 pinned."""
    from serving.versions import pin_version

    build_model_repository(Path(model_dir), repo_dir, version=OLD_VERSION)
    build_model_repository(Path(candidate_model_dir or model_dir), repo_dir, version=NEW_VERSION)
    for model in MODELS:  # building v2 wrote its config as the root one; v1 is what serves until the deploy
        pin_version(repo_dir, model, OLD_VERSION)
    return repo_dir


def bench_rollout(
    model_dir: Path,
    out_dir: Path,
    *,
    rate_per_s: float = 2.0,
    max_in_flight: int = 2,
    baseline_s: float = 20.0,
    slow_s: float | None = None,
    candidate_model_dir: Path | None = None,
    window_s: float = 10.0,
    wav: bytes | None = None,
) -> dict:
    """Deploy v2 over v1 under a steady load and measure what callers saw; returns what rollout.json holds.

    `window_s` is the deploy's metrics window (DeployConfig.window_s), fed by this load's own requests. `wav` is the
    spoken turn sent throughout and as the deploy's smoke request (None: serving.smoke.probe_wav(), a voiced sound
    with no words; a held-out utterance of a dataset makes the latencies those of real turns).
    """
    if baseline_s <= 0:
        raise ConfigError(f"baseline_s={baseline_s}: must be > 0 (seconds of plain serving before and after)")
    if slow_s is not None and slow_s <= 0:
        raise ConfigError(f"slow_s={slow_s}: must be > 0, or None for {SLOW_FACTOR:g}x the before phase's p95")
    wav = probe_wav() if wav is None else bytes(wav)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    repo = build_rollout_repository(model_dir, candidate_model_dir, out_dir / "model_repository")
    key = secrets.token_urlsafe(24)
    config = TritonConfig(
        model_repository=str(repo), admin_key=key, startup_timeout_s=300, work_dir=str(out_dir / "triton")
    )
    with TritonServer(config) as server:
        with EmotionOmniClient(server.http_url, timeout_s=120) as client:
            client.chat(wav)  # warm-up, not measured: the first reply builds lazily-made state
        deploy_config = DeployConfig(
            target="local",
            repository=str(repo),
            url=server.http_url,
            grpc_url=server.grpc_url,
            metrics_url=server.metrics_url,
            window_s=window_s,
        )
        with SteadyLoad(server.http_url, wav, rate_per_s=rate_per_s, max_in_flight=max_in_flight) as load:
            time.sleep(baseline_s)
            t0 = load.elapsed_s()
            outcome = _deploy(deploy_config, key, wav)
            t1 = load.elapsed_s()
            time.sleep(baseline_s)
    result = rollout_result(load.report, outcome, (t0, t1), slow_s)
    result["settings"] = {
        "rate_per_s": rate_per_s,
        "max_in_flight": max_in_flight,
        "baseline_s": baseline_s,
        "window_s": window_s,
        "model_dir": str(model_dir),
        "candidate_model_dir": str(candidate_model_dir or model_dir),
    }
    return write_rollout(result, load.report, outcome, out_dir)


def _deploy(config: DeployConfig, key: str, wav: bytes) -> DeployOutcome:
    """deploy_local with the admin key in the environment variable it reads, as `omni deploy` has it."""
    from serving.deploy_local import deploy_local

    saved = os.environ.get(config.admin_key_env)
    os.environ[config.admin_key_env] = key
    try:
        return deploy_local(config, NEW_VERSION, smoke_wav=wav)
    finally:
        if saved is None:
            os.environ.pop(config.admin_key_env, None)
        else:
            os.environ[config.admin_key_env] = saved


def rollout_result(report: LoadReport, outcome: DeployOutcome, deploy_span: tuple[float, float], slow_s: float | None):
    """The figures: per-phase summaries, the p95 ratio, the deploy's steps laid out from its start."""
    t0, t1 = deploy_span
    bounds = {"before": (0.0, t0), "during": (t0, t1), "after": (t1, report.seconds)}
    baseline_p95 = report.between(0.0, t0).summary(slow_s=0.0)["p95_s"]
    if slow_s is None:
        # No answered baseline (every request failed) leaves the chart's alert threshold as the bar.
        slow_s = SLOW_FACTOR * baseline_p95 if baseline_p95 else DeployConfig().max_p95_latency_s
    phases = {name: report.between(a, b).summary(slow_s) for name, (a, b) in bounds.items()}
    total = report.summary(slow_s)
    before_p95, during_p95 = phases["before"]["p95_s"], phases["during"]["p95_s"]
    steps, at = [], t0
    for step in outcome.steps:  # DeployStep keeps durations only; the steps run one after another
        steps.append({**asdict(step), "start_s": round(at, 2)})
        at += step.seconds
    return {
        "slow_s": round(slow_s, 4),
        "phases": phases,
        "bounds_s": {name: [round(a, 2), round(b, 2)] for name, (a, b) in bounds.items()},
        "total": total,
        "p95_ratio_during_vs_before": round(during_p95 / before_p95, 3) if before_p95 and during_p95 else None,
        "zero_downtime": total["failed"] == 0 and outcome.outcome == DEPLOYED,
        "deploy": {
            "outcome": outcome.outcome,
            "reason": outcome.reason,
            "version": outcome.version,
            "previous_version": outcome.previous_version,
            "serving_version": outcome.serving_version,
            "seconds": round(t1 - t0, 2),
            "steps": steps,
        },
    }


def write_rollout(result: dict, report: LoadReport, outcome: DeployOutcome, out_dir: Path) -> dict:
    """rollout.json (the result and every request), rollout.md and rollout.png; returns the result with its files."""
    result["files"] = {
        "json": str(out_dir / RESULT_FILE),
        "table": str(out_dir / TABLE_FILE),
        "plot": str(out_dir / PLOT_FILE),
    }
    (out_dir / TABLE_FILE).write_text(format_table(result) + "\n")
    plot_rollout(report, result, out_dir / PLOT_FILE)
    records = [asdict(r) for r in report.records]
    (out_dir / RESULT_FILE).write_text(json.dumps({**result, "requests": records}, indent=2) + "\n")
    return result


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(result: dict) -> str:
    """The Markdown report: one row per phase, the p95 ratio, the deploy's steps."""
    slow = result["slow_s"]
    lines = [
        f"| phase | seconds | requests | failed | slow (> {slow:.3f} s) | p50 s | p95 s | max s | delayed "
        "| max wait s | versions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in PHASES:
        p = result["phases"][name]
        versions = ", ".join(f"v{v}: {n}" for v, n in p["versions"].items()) or "-"
        lines.append(
            f"| {name} | {p['seconds']:.1f} | {p['requests']} | {p['failed']} | {p['slow']} | {_s(p['p50_s'])} "
            f"| {_s(p['p95_s'])} | {_s(p['max_s'])} | {p['delayed']} | {_s(p['max_wait_s'])} | {versions} |"
        )
    deploy = result["deploy"]
    ratio = result["p95_ratio_during_vs_before"]
    lines += [
        "",
        f"p95 during / before: {'-' if ratio is None else f'{ratio:.2f}x'}; "
        f"zero downtime: {'yes' if result['zero_downtime'] else 'no'}",
        "",
        f"deploy v{deploy['previous_version']} -> v{deploy['version']}: {deploy['outcome']}"
        + (f" ({deploy['reason']})" if deploy["reason"] else "")
        + f", {deploy['seconds']:.1f} s",
        "",
        "| step | starts at s | seconds | detail |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {s['name']} | {s['start_s']:.1f} | {s['seconds']:.2f} | {s['detail']} |" for s in deploy["steps"]]
    errors = result["total"]["errors"]
    if errors:
        lines += ["", "errors:"] + [f"- {e}" for e in errors]
    return "\n".join(lines)


def plot_rollout(report: LoadReport, result: dict, path: Path) -> Path:
    """Each request's latency at its start time, coloured by the version that answered; failures as red crosses on
    the time axis; the deploy's steps shaded."""
    figure = new_figure(11, 4)
    axes = figure.subplots()
    steps = result["deploy"]["steps"]
    for i, step in enumerate(steps):  # in the legend, not on the plot: short steps' labels would overlap
        start, seconds = step["start_s"], step["seconds"]
        axes.axvspan(
            start, start + seconds, color=f"C{i % 10}", alpha=0.15, lw=0, label=f"{step['name']} ({seconds:.1f} s)"
        )
    versions = sorted({r.model_version for r in report.records if r.ok})
    markers = {OLD_VERSION: "o", NEW_VERSION: "s"}
    for version in versions:
        mine = [r for r in report.records if r.ok and r.model_version == version]
        axes.scatter(
            [r.start_s for r in mine],
            [r.latency_s for r in mine],
            s=12,
            marker=markers.get(int(version) if version.isdigit() else 0, "^"),
            label=f"{TRITON_MODEL_NAME} v{version}",
        )
    failed = [r for r in report.records if not r.ok]
    if failed:
        axes.scatter(
            [r.start_s for r in failed], [0] * len(failed), marker="x", color="tab:red", label=f"failed ({len(failed)})"
        )
    axes.axhline(result["slow_s"], ls="--", color="#555555", lw=1, label=f"slow > {result['slow_s']:.2f} s")
    axes.set(xlabel="seconds since the load started", ylabel="latency (s)", ylim=(0, None))
    axes.set_title(
        f"Rollout v{result['deploy']['previous_version']} -> v{result['deploy']['version']} under "
        f"{result['settings']['rate_per_s']:g} req/s: {result['deploy']['outcome']}, "
        f"{result['total']['failed']} failed of {result['total']['requests']}",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(figure, path)
