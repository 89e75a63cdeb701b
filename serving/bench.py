"""`omni bench serve`: what dynamic batching and streaming buy, measured in one run on one model.

One tritonserver on 127.0.0.1 (loopback only: the benchmark never drives a server it did not start) holds three
models over the same weights, each mode driven in turn so they never share the cores:

    one-at-a-time      emotion_omni_unbatched: emotion_omni's config.pbtxt without dynamic_batching and with
                       one instance, so the server answers one request at a time (the baseline)
    dynamic-batching   emotion_omni as shipped (HTTP)
    streaming          emotion_omni_stream as shipped (gRPC: the text first, then audio chunks)

At each concurrency, that many closed-loop clients each send their next spoken turn as soon as the last reply is
in. Reported per (mode, concurrency): requests/s and its ratio to one-at-a-time at the same concurrency, latency
p50/p95/p99, first audio p50/p95 (when the caller can start playing: the first chunk when streaming, the whole
reply otherwise), real-time factor p50 (seconds to answer / seconds of reply audio), the batch Triton formed on
average, and errors. Written as a Markdown table, JSON and a PNG.

`soak` drives dynamic batching for a bounded number of minutes and samples the memory of the server's process
tree (tritonserver and its python-backend stubs): it passes with 0 errors and RSS growth under 10 %.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import threading
import time
import urllib.request
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import psutil
from tqdm import tqdm

from components.contracts import TRITON_MODEL_NAME, TRITON_STREAM_MODEL_NAME
from components.errors import ConfigError
from components.plotting import new_figure, save_figure
from serving.launcher import TritonConfig, TritonServer
from serving.repository import build_model_repository, link_or_copy, with_instance_count

BASELINE, BATCHED, STREAMING = "one-at-a-time", "dynamic-batching", "streaming"
MODES = (BASELINE, BATCHED, STREAMING)
UNBATCHED_MODEL = f"{TRITON_MODEL_NAME}_unbatched"  # bench-only: never in a published repository
MODEL_OF = {BASELINE: UNBATCHED_MODEL, BATCHED: TRITON_MODEL_NAME, STREAMING: TRITON_STREAM_MODEL_NAME}
CONCURRENCY = (1, 4, 8, 16)
RESULT_FILE, TABLE_FILE, PLOT_FILE = "bench_serve.json", "bench_serve.md", "bench_serve.png"
SOAK_FILE, SOAK_PLOT_FILE = "bench_serve_soak.json", "bench_serve_soak.png"
MAX_SOAK_MINUTES = 120  # bounded: a soak is a check, not a load test left running
SOAK_RSS_GROWTH_LIMIT = 0.10  # the bar: memory that grows more than 10 % over a soak is a leak


@dataclass
class Sample:
    """One request as its client saw it."""

    latency_s: float
    first_audio_s: float | None  # when audio could first play; None without audio or on error
    audio_s: float  # seconds of reply audio received
    error: str = ""


@dataclass
class LevelResult:
    mode: str
    concurrency: int
    requests: int
    errors: int
    requests_per_s: float
    latency_p50_s: float | None  # None when every request failed
    latency_p95_s: float | None
    latency_p99_s: float | None
    first_audio_p50_s: float | None
    first_audio_p95_s: float | None
    rtf_p50: float | None  # seconds to answer per second of reply audio; < 1 is faster than real time
    mean_batch: float | None  # requests per model execution, from Triton's own counters
    vs_baseline: float | None = None
    first_error: str = ""


@dataclass
class ServeBench:
    rows: list[LevelResult]
    table: str
    json_path: Path
    table_path: Path
    plot_path: Path


@dataclass
class SoakResult:
    minutes: float
    concurrency: int
    requests: int
    errors: int
    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    rss_growth: float
    passed: bool
    first_error: str = ""
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"soak {verdict}: {self.requests} requests in {self.minutes:g} min at concurrency {self.concurrency},"
            f" {self.errors} errors, server RSS {self.rss_start_mb:.0f} -> {self.rss_end_mb:.0f} MB "
            f"({self.rss_growth:+.1%}; limit +{SOAK_RSS_GROWTH_LIMIT:.0%}), peak {self.rss_peak_mb:.0f} MB"
        )


# --- the repository and the server ----------------------------------------------------------------------------
_DYNAMIC_BATCHING = re.compile(r"\n(?:[ \t]*#[^\n]*\n)*[ \t]*dynamic_batching\s*\{[^}]*\}\n")


def one_at_a_time(config_text: str, name: str) -> str:
    """emotion_omni's config.pbtxt as the one-at-a-time twin `name`: the same model without the dynamic_batching
    block, on one instance."""
    text, count = _DYNAMIC_BATCHING.subn("\n", config_text)
    if count != 1:
        raise ValueError(f"config.pbtxt has {count} dynamic_batching blocks; the one-at-a-time twin removes one")
    text = with_instance_count(text, 1)
    text, count = re.subn(r'^name:\s*"[^"]*"', f'name: "{name}"', text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError("config.pbtxt has no top-level name to rename")
    return text


def build_bench_repository(model_dir: Path, repo_dir: Path) -> Path:
    """The shipped repository for `model_dir` plus the one-at-a-time twin of emotion_omni (weights linked)."""
    repo_dir = build_model_repository(Path(model_dir), Path(repo_dir))
    source, twin = repo_dir / TRITON_MODEL_NAME, repo_dir / UNBATCHED_MODEL
    if twin.exists():
        shutil.rmtree(twin)
    shutil.copytree(source, twin, copy_function=link_or_copy)
    (twin / "config.pbtxt").unlink()  # a link to the source's: write a new file, never through the link
    (twin / "config.pbtxt").write_text(one_at_a_time((source / "config.pbtxt").read_text(), UNBATCHED_MODEL))
    return repo_dir


def server_rss_mb(pid: int) -> float:
    """Resident memory of tritonserver and every process under it (the python-backend stubs), in MB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:  # a stub that exited between listing and reading
            continue
    return total / 2**20


def execution_counts(metrics_url: str) -> dict[str, tuple[float, float]]:
    """model -> (requests succeeded, executions) from Triton's nv_inference_* counters."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, list[float]] = {}
    for metric, slot in (("nv_inference_request_success", 0), ("nv_inference_exec_count", 1)):
        for model, value in re.findall(rf'^{metric}\{{model="([^"]+)"[^}}]*\}} (\S+)$', text, re.MULTILINE):
            counts.setdefault(model, [0.0, 0.0])[slot] += float(value)
    return {model: (v[0], v[1]) for model, v in counts.items()}


# --- callers: one per client thread ---------------------------------------------------------------------------
def _wav_seconds(wav_bytes: bytes) -> float:
    if not wav_bytes:
        return 0.0
    with wave.open(BytesIO(wav_bytes)) as reader:
        return reader.getnframes() / reader.getframerate()


class HttpCaller:
    """One client thread's connection to a batched model (HTTP): a spoken turn in, a Sample out."""

    def __init__(self, url: str, model: str):
        from serving.client import EmotionOmniClient

        self.client = EmotionOmniClient(url, timeout_s=300, model_name=model)

    def __call__(self, wav: bytes) -> Sample:
        reply = self.client.chat(wav)
        audio_s = _wav_seconds(reply.audio_wav)
        return Sample(reply.latency_s, reply.latency_s if audio_s else None, audio_s)

    def close(self) -> None:
        self.client.close()


class StreamCaller:
    """One client thread's connection to the streaming model (gRPC): first audio is the first chunk's arrival."""

    def __init__(self, url: str, model: str):
        from serving.stream_client import EmotionOmniStreamClient

        self.client = EmotionOmniStreamClient(url, timeout_s=300, model_name=model)

    def __call__(self, wav: bytes) -> Sample:
        from serving.stream_client import StreamEnd

        end = next(e for e in self.client.chat_stream(wav) if isinstance(e, StreamEnd))
        return Sample(end.total_s, end.first_audio_s, end.audio_s)

    def close(self) -> None:
        self.client.close()


Caller = HttpCaller | StreamCaller


def drive(
    make_caller: Callable[[], Caller],
    wavs: Sequence[bytes],
    concurrency: int,
    *,
    requests: int | None = None,
    until: float | None = None,
    progress: tqdm | None = None,
) -> tuple[list[Sample], float]:
    """`concurrency` closed-loop clients send `wavs` in turn until `requests` are done (or time.monotonic()
    passes `until`); returns every request's Sample and the wall seconds from first send to last reply."""
    if (requests is None) == (until is None):
        raise ValueError("give exactly one of requests or until")
    order, samples, lock = itertools.count(), [], threading.Lock()

    def client() -> None:
        call = make_caller()
        try:
            while True:
                i = next(order)  # itertools.count is atomic under the GIL
                if (requests is not None and i >= requests) or (until is not None and time.monotonic() >= until):
                    return
                started = time.perf_counter()
                try:
                    sample = call(wavs[i % len(wavs)])
                except Exception as err:  # counted, never fatal: the benchmark reports errors
                    sample = Sample(time.perf_counter() - started, None, 0.0, f"{type(err).__name__}: {err}")
                with lock:
                    samples.append(sample)
                if progress is not None:
                    progress.update(1)
        finally:
            call.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, time.perf_counter() - started


def summarize(
    mode: str, concurrency: int, samples: list[Sample], seconds: float, mean_batch: float | None
) -> LevelResult:
    ok = [s for s in samples if not s.error]
    latency = np.array([s.latency_s for s in ok])
    first = np.array([s.first_audio_s for s in ok if s.first_audio_s is not None])
    rtf = np.array([s.latency_s / s.audio_s for s in ok if s.audio_s > 0])

    def pct(values: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(values, q)), 4) if values.size else None

    return LevelResult(
        mode=mode,
        concurrency=concurrency,
        requests=len(samples),
        errors=len(samples) - len(ok),
        requests_per_s=round(len(ok) / seconds, 3) if seconds > 0 else 0.0,
        latency_p50_s=pct(latency, 50),
        latency_p95_s=pct(latency, 95),
        latency_p99_s=pct(latency, 99),
        first_audio_p50_s=pct(first, 50),
        first_audio_p95_s=pct(first, 95),
        rtf_p50=pct(rtf, 50),
        mean_batch=None if mean_batch is None else round(mean_batch, 2),
        first_error=next((s.error for s in samples if s.error), ""),
    )


# --- the benchmark ----------------------------------------------------------------------------------------------
def _caller_factory(server: TritonServer, mode: str) -> Callable[[], Caller]:
    model = MODEL_OF[mode]
    if mode == STREAMING:
        return lambda: StreamCaller(server.grpc_url, model)
    return lambda: HttpCaller(server.http_url, model)


def _server(model_dir: Path, work_dir: Path, modes: Sequence[str]) -> TritonServer:
    """A server (not started: use it as a context manager) on 127.0.0.1 with free ports, loading `modes`' models."""
    repo = build_bench_repository(model_dir, work_dir / "model_repository")
    models = tuple(MODEL_OF[m] for m in modes)
    return TritonServer(
        TritonConfig(
            model_repository=str(repo), models=models, startup_timeout_s=300, work_dir=str(work_dir / "triton")
        )
    )


def bench_serve(
    model_dir: Path,
    wavs: Sequence[bytes],
    out_dir: Path,
    *,
    modes: Sequence[str] = MODES,
    concurrency: Sequence[int] = CONCURRENCY,
    requests: int = 32,
    warmup: int = 2,
) -> ServeBench:
    """Every mode at every concurrency, `requests` replies per level (at least 2 per client)."""
    _check(modes, concurrency, wavs)
    if requests < 1 or warmup < 0:
        raise ConfigError("bench requests must be >= 1 and warmup >= 0")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[LevelResult] = []
    with _server(model_dir, out_dir / "server", modes) as server:
        for mode in modes:
            make_caller = _caller_factory(server, mode)
            drive(make_caller, wavs, 1, requests=warmup)  # loads lazily-built state, fills caches
            for level in concurrency:
                total = max(requests, 2 * level)
                before = execution_counts(server.metrics_url)
                with tqdm(total=total, desc=f"{mode} x{level}", unit="req", leave=False) as bar:
                    samples, seconds = drive(make_caller, wavs, level, requests=total, progress=bar)
                after = execution_counts(server.metrics_url)
                rows.append(summarize(mode, level, samples, seconds, _mean_batch(before, after, MODEL_OF[mode])))
                print(_row_line(rows[-1]))
    _add_ratios(rows)
    table = format_table(rows)
    json_path, table_path, plot_path = out_dir / RESULT_FILE, out_dir / TABLE_FILE, out_dir / PLOT_FILE
    json_path.write_text(
        json.dumps(
            {"rows": [asdict(r) for r in rows], "requests_per_level": requests, "model_dir": str(model_dir)}, indent=2
        )
        + "\n"
    )
    table_path.write_text(table + "\n")
    plot_bench(rows, plot_path)
    return ServeBench(rows, table, json_path, table_path, plot_path)


def soak(
    model_dir: Path,
    wavs: Sequence[bytes],
    out_dir: Path,
    minutes: float,
    concurrency: int = 8,
    sample_every_s: float = 2.0,
    warmup: int = 4,
) -> SoakResult:
    """Dynamic batching at `concurrency` for `minutes`; the server's RSS sampled every `sample_every_s`."""
    if not 0 < minutes <= MAX_SOAK_MINUTES:
        raise ConfigError(f"soak minutes={minutes}: give 0 < minutes <= {MAX_SOAK_MINUTES}")
    _check([BATCHED], [concurrency], wavs)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with _server(model_dir, out_dir / "server", [BATCHED]) as server:
        make_caller = _caller_factory(server, BATCHED)
        drive(make_caller, wavs, concurrency, requests=warmup)  # the first batches allocate what later ones reuse
        series: list[tuple[float, float]] = []
        stop, start = threading.Event(), time.monotonic()

        def sample_rss() -> None:
            while True:
                series.append((round(time.monotonic() - start, 2), round(server_rss_mb(server.pid), 1)))
                if stop.wait(sample_every_s):
                    return

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        with tqdm(desc=f"soak {minutes:g} min", unit="req") as bar:
            samples, _ = drive(make_caller, wavs, concurrency, until=start + minutes * 60, progress=bar)
        stop.set()
        sampler.join()
    rss = [mb for _, mb in series]
    ends = max(1, len(rss) // 10)  # medians over the first and last tenth: one sample's noise is not growth
    first, last = float(np.median(rss[:ends])), float(np.median(rss[-ends:]))
    errors = [s for s in samples if s.error]
    growth = (last - first) / first
    result = SoakResult(
        minutes=minutes,
        concurrency=concurrency,
        requests=len(samples),
        errors=len(errors),
        rss_start_mb=round(first, 1),
        rss_end_mb=round(last, 1),
        rss_peak_mb=max(rss),
        rss_growth=round(growth, 4),
        passed=not errors and growth < SOAK_RSS_GROWTH_LIMIT,
        first_error=errors[0].error if errors else "",
        rss_series=series,
    )
    (out_dir / SOAK_FILE).write_text(json.dumps(asdict(result), indent=2) + "\n")
    plot_soak(result, out_dir / SOAK_PLOT_FILE)
    return result


def held_out_turns(dataset_dir: Path, limit: int = 32) -> list[bytes]:
    """The user turns a benchmark sends: a synthesized dataset's held-out split (else any), as WAV bytes."""
    from components.synthesis import read_manifest

    rows = read_manifest(dataset_dir)
    held_out = [r for r in rows if r["split"] != "train"] or rows
    return [(Path(dataset_dir) / r["user_wav"]).read_bytes() for r in held_out[:limit]]


def _check(modes: Sequence[str], concurrency: Sequence[int], wavs: Sequence[bytes]) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ConfigError(f"bench modes {unknown or '(none)'}: choose from {', '.join(MODES)}")
    if not concurrency or any(not isinstance(c, int) or c < 1 for c in concurrency):
        raise ConfigError(f"concurrency {list(concurrency)}: give integers >= 1, e.g. 1,4,8,16")
    if not wavs:
        raise ConfigError("no WAVs to send: give a dataset with user turns (`omni data synthesize`)")


def _mean_batch(before: dict, after: dict, model: str) -> float | None:
    done = [a - b for a, b in zip(after.get(model, (0, 0)), before.get(model, (0, 0)))]
    return done[0] / done[1] if done[1] > 0 else None


def _add_ratios(rows: list[LevelResult]) -> None:
    baseline = {r.concurrency: r.requests_per_s for r in rows if r.mode == BASELINE}
    for row in rows:
        if baseline.get(row.concurrency):
            row.vs_baseline = round(row.requests_per_s / baseline[row.concurrency], 2)


# --- reporting --------------------------------------------------------------------------------------------------
def _s(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row_line(r: LevelResult) -> str:
    return (
        f"{r.mode:>16} x{r.concurrency:<3} {r.requests_per_s:6.2f} req/s  p50 {_s(r.latency_p50_s)} s  "
        f"p99 {_s(r.latency_p99_s)} s  first audio p50 {_s(r.first_audio_p50_s)} s  errors {r.errors}"
    )


def format_table(rows: list[LevelResult]) -> str:
    lines = [
        "| mode | concurrency | req/s | vs one-at-a-time | p50 s | p95 s | p99 s | first audio p50 s | "
        "first audio / p50 | RTF p50 | mean batch | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fraction = (
            r.first_audio_p50_s / r.latency_p50_s if r.first_audio_p50_s is not None and r.latency_p50_s else None
        )
        lines.append(
            f"| {r.mode} | {r.concurrency} | {r.requests_per_s:.2f} | "
            f"{'n/a' if r.vs_baseline is None else f'{r.vs_baseline:.2f}x'} | {_s(r.latency_p50_s)} | "
            f"{_s(r.latency_p95_s)} | {_s(r.latency_p99_s)} | {_s(r.first_audio_p50_s)} | "
            f"{'n/a' if fraction is None else f'{fraction:.0%}'} | {_s(r.rtf_p50, 3)} | "
            f"{_s(r.mean_batch, 1)} | {r.errors} |"
        )
    return "\n".join(lines)


def plot_bench(rows: list[LevelResult], path: Path) -> Path:
    figure = new_figure(11, 4.2)
    throughput, latency = figure.subplots(1, 2)
    for mode in dict.fromkeys(r.mode for r in rows):
        mine = [r for r in rows if r.mode == mode]
        levels = [r.concurrency for r in mine]
        (line,) = throughput.plot(levels, [r.requests_per_s for r in mine], marker="o", label=mode)
        latency.plot(levels, [r.latency_p50_s for r in mine], marker="o", color=line.get_color(), label=f"{mode} p50")
        latency.plot(levels, [r.latency_p99_s for r in mine], ls="--", color=line.get_color(), label=f"{mode} p99")
        if mode == STREAMING:
            latency.plot(
                levels,
                [r.first_audio_p50_s for r in mine],
                ls=":",
                marker="s",
                color=line.get_color(),
                label="streaming first audio p50",
            )
    throughput.set(xlabel="concurrent clients", ylabel="replies / s", title="Throughput")
    latency.set(xlabel="concurrent clients", ylabel="seconds", title="Latency (whole reply; first audio dotted)")
    for axes in (throughput, latency):
        axes.set_xscale("log", base=2)
        levels = sorted({r.concurrency for r in rows})
        axes.set_xticks(levels, labels=[str(c) for c in levels])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return save_figure(figure, path)


def plot_soak(result: SoakResult, path: Path) -> Path:
    figure = new_figure(7, 3.2)
    axes = figure.subplots()
    seconds, mb = zip(*result.rss_series) if result.rss_series else ((), ())
    axes.plot([s / 60 for s in seconds], mb)
    axes.axhline(result.rss_start_mb * (1 + SOAK_RSS_GROWTH_LIMIT), ls="--", color="tab:red", label="+10 % limit")
    axes.set(
        xlabel="minutes",
        ylabel="server RSS, MB",
        title=f"Soak: {result.requests} requests, {result.errors} errors, RSS {result.rss_growth:+.1%}",
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)
