"""`omni`: the platform's one command line. Each subcommand is a plain function tests call directly.

    omni demo                                   the whole pipeline locally (kfp.local) on embedded defaults
    omni data synthesize --out DIR              step 1 alone (three TTS engines, channels, an unseen-voice split)
    omni data probe --train DIR --eval DIR      the user-emotion path alone in a minute: how a dataset generalizes
    omni train --dataset DIR --out DIR          training stage 1 alone (the thinker; DeepSpeed, torchrun ranks)
    omni speech units --dataset DIR --out DIR   the speech units stage 2 trains on (k-means over reply audio)
    omni train --stage 2 --dataset DIR --init-model DIR/model --units DIR --out DIR   stage 2 (the talker)
    omni evaluate --model DIR --dataset DIR     step 3 alone
    omni serve --model DIR | --model-repository DIR
    omni deploy --version N                     into the running `omni serve`: load, smoke-test, swap, watch
    omni rollback                               back to the version that served before
    omni chat --audio in.wav --out reply.wav    talk to a running server (or --model DIR in-process; --stream)
    omni bench train --dataset DIR --out DIR    torch, DDP and DeepSpeed ZeRO-1/2/3 throughput and memory, vs DDP
    omni bench serve --model DIR --dataset DIR --out DIR   one-at-a-time vs dynamic batching vs streaming (--soak MIN)
    omni bench synthesize --out DIR             dataset synthesis with 1 vs 2 workers, per stage, 200k extrapolated
    omni bench rollout --model DIR --out DIR    zero downtime, measured: deploy v2 over v1 under a steady load
    omni pipeline compile --out pipeline.yaml   IR YAML for a Kubeflow Pipelines cluster
    omni pipeline submit --host URL             one run on a KFP endpoint (--param KEY=VALUE, repeatable)
    omni pipeline schedule --host URL --cron "0 3 * * *"   a recurring run
KFP credentials come from the environment (KF_PIPELINES_SA_TOKEN_PATH: a file holding a token), never flags.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path

from components.contracts import (
    TRITON_ADMIN_HEADER,
    TRITON_ADMIN_KEY_ENV,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)
from components.errors import OmniError
from omni import deploy as deploy_commands
from omni.common import DEFAULT_DATA_DIR, CLIError, registry_uri


# --- commands -----------------------------------------------------------------------------------------
def demo(
    data_dir: Path = DEFAULT_DATA_DIR,
    n: int | None = None,
    epochs: int | None = None,
    nproc: int | None = None,
    max_steps: int | None = None,
    seed: int | None = None,
    gate_json: str | None = None,
    train_config_json: str | None = None,
    publish_uri: str | None = None,
    instance_kind: str | None = None,
    speech_epochs: int | None = None,
    speech_max_steps: int | None = None,
    speech_train_config_json: str | None = None,
    token2wav_json: str | None = None,
    restyled_per_reply: int | None = None,
    deploy: bool = True,
) -> dict:
    """Run the whole pipeline with kfp.local and print where everything is, the metrics and step times.
    An argument left None takes the pipeline parameter's default (pipelines/emotion_omni.py), which the config
    dataclasses set: the demo, a compiled pipeline and each step alone start from the same values.
    With `deploy`, the last step deploys a version that passed the gate into <data_dir>/serving, the repository
    `omni serve --model-repository` serves with its versions (verified on a tritonserver started for it)."""
    from pipelines.local_run import run_local
    from pipelines.summary import build_summary, format_summary

    data_dir = Path(data_dir).resolve()
    parameters = {
        "n": n,
        "seed": seed,
        "epochs": epochs,
        "nproc": nproc,
        "max_steps": max_steps,
        "gate_json": gate_json,
        "train_config_json": train_config_json,
        "triton_publish_uri": publish_uri,
        "triton_instance_kind": instance_kind,
        "speech_epochs": speech_epochs,
        "speech_max_steps": speech_max_steps,
        "speech_train_config_json": speech_train_config_json,
        "token2wav_json": token2wav_json,
        "restyled_per_reply": restyled_per_reply,
    }
    if deploy:
        parameters["deploy_target"] = "local"
        parameters["deploy_json"] = json.dumps({"repository": str(data_dir / deploy_commands.SERVING_REPOSITORY)})
    run = run_local(data_dir, **{name: value for name, value in parameters.items() if value is not None})
    summary = build_summary(run, data_dir)
    (data_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    return summary


def synthesize(
    out: str,
    n: int | None = None,
    seed: int | None = None,
    test_fraction: float | None = None,
    overwrite: bool = False,
    channels: bool = True,
    engines: list[str] | None = None,
    unseen_voice_fraction: float | None = None,
    workers: int | None = None,
    shard_size: int | None = None,
    text_backend: str | None = None,
    filters: bool = True,
    whisper_path: str | None = None,
    resume: bool = True,
):
    """Step 1 alone. Unset options keep SynthesisConfig's defaults; `channels=False` leaves user turns clean,
    `filters=False` keeps every dialogue. `out` is a directory or an s3:// URI."""
    from components.synthesis import SynthesisConfig, synthesize_dataset
    from components.synthesis.filters import FilterConfig

    given = {
        "n": n,
        "seed": seed,
        "test_fraction": test_fraction,
        "unseen_voice_fraction": unseen_voice_fraction,
        "engines": tuple(engines) if engines else None,
        "workers": workers,
        "shard_size": shard_size,
        "text_backend": text_backend,
    }
    config = SynthesisConfig(
        **{k: v for k, v in given.items() if v is not None},
        **({} if channels else {"channels": None}),
        filters=FilterConfig(whisper_path=whisper_path) if filters else None,
    )
    summary = synthesize_dataset(
        config, out if str(out).startswith("s3://") else Path(out), overwrite=overwrite, resume=resume
    )
    resumed = (
        f", {summary.resumed_shards} of {summary.shards} shards from an earlier run" if summary.resumed_shards else ""
    )
    print(
        f"wrote {summary.n} dialogues ({summary.audio_hours:.2f} h audio) to {summary.out_dir} "
        f"in {summary.elapsed_s:.1f} s{resumed}; card: {summary.out_dir}/README.md"
    )
    return summary


def probe(
    train: list[Path],
    eval_dataset: Path,
    train_turns: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    out: Path | None = None,
):
    """Train the model's user-emotion path alone on `train`'s training turns; score `eval_dataset`'s test and
    unseen-voice splits (components/evaluation/probe.py). With `out`, the result is also written there as JSON."""
    import dataclasses

    from components.evaluation.probe import ProbeConfig, probe_user_emotion

    given = {"train_turns": train_turns, "epochs": epochs, "seed": seed}
    config = ProbeConfig(**{name: value for name, value in given.items() if value is not None})
    result = probe_user_emotion([Path(d) for d in train], Path(eval_dataset), config)
    print(result.table())
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result


def train(
    dataset: Path,
    out: Path,
    epochs: int | None = None,
    nproc: int | None = None,
    max_steps: int | None = None,
    config: Path | None = None,
    stage: int = 1,
    init_model: Path | None = None,
    units: Path | None = None,
    resume: bool = False,
):
    """Training stage 1 (the thinker) or, with --stage 2, the talker on a stage-1 model and speech units;
    `resume` continues a killed run from its newest complete checkpoint."""
    from components.training import TrainConfig
    from components.training import train as run_training
    from components.training.config import SpeechTrainConfig

    if stage == 2 and (init_model is None or units is None):
        raise CLIError(
            "--stage 2 needs --init-model (the stage-1 model directory, RUN/model) and --units "
            "(the output of `omni speech units`)"
        )
    defaults = SpeechTrainConfig if stage == 2 else TrainConfig
    train_config = defaults.load(config) if config else defaults()
    for name, value in (("epochs", epochs), ("nproc", nproc), ("max_steps", max_steps)):
        if value is not None:  # a flag given overrides the config file; 0 is a value (max_steps 0: all epochs)
            setattr(train_config, name, value)
    result = run_training(
        Path(dataset), Path(out), train_config, init_model=init_model, speech_units=units, resume=resume
    )
    resumed = result.summary["resumed_from_step"]
    print(
        f"stage {train_config.stage} model exported to {result.model_dir}; loss curve {result.loss_curve}; "
        f"{result.summary['samples_per_second']} samples/s over {result.summary['world_size']} ranks"
        + (f"; resumed at step {resumed}" if resumed else "")
    )
    return result


def speech_units(
    dataset: Path,
    out: Path,
    num_units: int | None = None,
    cosyvoice2: Path | None = None,
    prompt_wav: Path | None = None,
    restyled_per_reply: int = 0,
):
    """Write every reply's speech units: k-means fitted on the reply audio (local token2wav), or the speech
    tokens of a local CosyVoice2 checkpoint (`cosyvoice2`)."""
    from components.speech.backends import cosyvoice2_config
    from components.speech.config import EmotionOmniToken2WavConfig
    from components.speech.dataset_units import build_speech_units

    if cosyvoice2 is not None:
        config = cosyvoice2_config(Path(cosyvoice2), str(prompt_wav or ""))
    else:
        config = EmotionOmniToken2WavConfig(**({"num_units": num_units} if num_units else {}))
    summary = build_speech_units(Path(dataset), Path(out), config, restyled_per_reply=restyled_per_reply)
    card = summary.card
    how = (
        f"fitted on {card['train_units']} frames in {card['fit_seconds']} s; centroid-only resynthesis STOI "
        f"{card['centroid_resynthesis_stoi']['mean']}"
        if card["backend"] == "local"
        else f"CosyVoice2 speech tokens, {card['units_used']} distinct in the train split"
    )
    print(
        f"{card['num_units']} units at {card['unit_rate_hz']:g}/s, {how}; {card['restyled_replies']} restyled "
        f"replies -> {summary.out_dir}"
    )
    return summary


def bench_train(
    dataset: Path,
    out: Path,
    modes: str | None = None,
    steps: int = 20,
    warmup: int = 3,
    config: Path | None = None,
    nproc: int | None = None,
):
    """Train the same model on the same data for the same steps under each parallelism mode; print the table.
    `nproc` (ranks of the distributed modes) defaults to the config's."""
    from components.training import TrainConfig
    from components.training.bench import bench_train as run_bench
    from components.training.bench_worker import MODES

    chosen = [m.strip() for m in modes.split(",") if m.strip()] if modes else MODES
    train_config = TrainConfig.load(config) if config else TrainConfig()
    report = run_bench(
        Path(dataset),
        Path(out),
        train_config,
        modes=chosen,
        steps=steps,
        warmup=warmup,
        nproc=train_config.nproc if nproc is None else nproc,
    )
    print(report.table)
    print(f"\nJSON {report.json_path}; plot {report.plot_path}")
    return report


def bench_synthesize(out: Path, n: int = 120, workers: str = "1,2", shard_size: int = 20, stage_sample: int = 30):
    """Dialogues/s with each worker count, seconds per stage, and the extrapolation to 200k dialogues."""
    from components.synthesis.bench import PLOT_FILE, RESULT_FILE, TABLE_FILE, bench_synthesis, format_table
    from components.synthesis.config import SynthesisConfig

    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        raise CLIError(f"--workers {workers!r}: give comma-separated integers, e.g. 1,2") from None
    report = bench_synthesis(Path(out), SynthesisConfig(n=n, shard_size=shard_size), counts, stage_sample)
    print(format_table(report))
    print(f"\nJSON {Path(out) / RESULT_FILE}; table {Path(out) / TABLE_FILE}; plot {Path(out) / PLOT_FILE}")
    return report


def bench_serve(
    model: Path,
    dataset: Path,
    out: Path,
    modes: str | None = None,
    concurrency: str = "1,4,8,16",
    requests: int = 32,
    soak_minutes: float | None = None,
    soak_concurrency: int = 8,
):
    """Serve the model on a local tritonserver and load it in each mode (or soak it); print the table."""
    from serving import bench

    wavs = bench.held_out_turns(Path(dataset))
    if soak_minutes is not None:
        result = bench.soak(Path(model), wavs, Path(out), soak_minutes, concurrency=soak_concurrency)
        print(result.line())
        print(f"JSON {Path(out) / bench.SOAK_FILE}; plot {Path(out) / bench.SOAK_PLOT_FILE}")
        if not result.passed:
            raise CLIError(f"the soak failed: {result.first_error or 'server memory grew past the limit'}")
        return result
    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise CLIError(f"--concurrency {concurrency!r}: give comma-separated integers, e.g. 1,4,8,16") from None
    chosen = [m.strip() for m in modes.split(",") if m.strip()] if modes else bench.MODES
    report = bench.bench_serve(Path(model), wavs, Path(out), modes=chosen, concurrency=levels, requests=requests)
    print(report.table)
    print(f"\nJSON {report.json_path}; plot {report.plot_path}")
    return report


def evaluate(model: Path, dataset: Path, out: Path, split: str = "test", limit: int | None = None):
    from components.evaluation.evaluate import evaluate_model

    outcome = evaluate_model(Path(model), Path(dataset), Path(out), split=split, limit=limit)
    for key, value in outcome.summary().items():
        print(f"  {key:36s} {value:.4g}")
    if outcome.judge and not outcome.judge.computed:
        print(f"  {'empathy_score':36s} not computed: {outcome.judge.reason}")
    if outcome.speech:
        for key, reason in outcome.speech.not_computed.items():
            print(f"  {key:36s} not computed: {reason}")
        for t in outcome.speech.targets:
            print(f"  target {t.line()}")
    print(f"report: {outcome.report.html}")
    return outcome


def serve(
    model: Path | None = None,
    model_repository: Path | None = None,
    http_port: int = TRITON_HTTP_PORT,
    grpc_port: int = TRITON_GRPC_PORT,
    metrics_port: int = TRITON_METRICS_PORT,
    host: str = "127.0.0.1",
    work_dir: Path | None = None,
    block: bool = True,
    prometheus_port: int | None = None,
):
    """Start tritonserver on a repository (built from --model if given); blocks until Ctrl-C when `block`.
    `prometheus_port` (0 = any free port) also starts a local Prometheus scraping it with the chart's alert rules;
    with `block=False` it is returned too: (server, prometheus)."""
    from serving.launcher import TritonConfig, TritonServer
    from serving.repository import MODELS, build_model_repository

    if (model is None) == (model_repository is None):
        raise CLIError("pass exactly one of --model (an exported model dir) or --model-repository")
    work_dir = Path(work_dir or DEFAULT_DATA_DIR / "serve").resolve()
    if model is not None:
        model_repository = build_model_repository(Path(model), work_dir / "model_repository")
    # Both models where the repository has both (one built before streaming existed has only emotion_omni).
    models = tuple(m for m in MODELS if (Path(model_repository) / m).is_dir()) or MODELS[:1]
    # Explicit model control: the repository API loads and unloads versions (`omni deploy`), so it answers only
    # requests carrying $TRITON_ADMIN_KEY; without one it is locked with a key nobody knows.
    admin_key = os.environ.get(TRITON_ADMIN_KEY_ENV, "")
    server = TritonServer(
        TritonConfig(
            model_repository=str(model_repository),
            host=host,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            models=models,
            work_dir=str(work_dir / "triton"),
            admin_key=admin_key or secrets.token_urlsafe(24),
        )
    ).start()
    repository_api = (
        f"restricted to the {TRITON_ADMIN_HEADER} header (${TRITON_ADMIN_KEY_ENV}): "
        f"omni deploy --version N --repository {model_repository}"
        if admin_key
        else f"locked (set {TRITON_ADMIN_KEY_ENV} before `omni serve` to deploy versions into it)"
    )
    print(
        f"Triton serving {model_repository} ({', '.join(models)})\n  http    {server.http_url}\n"
        f"  grpc    {server.grpc_url}\n  metrics {server.metrics_url}\n  log     {server.log_path}\n"
        f"  repository API {repository_api}\n"
        f"try: omni chat --url {server.http_url} --audio in.wav --out reply.wav\n"
        f"     omni chat --stream --url {server.grpc_url} --audio in.wav --out reply.wav"
    )
    prometheus = None
    if prometheus_port is not None:
        from serving.local_prometheus import LocalPrometheus

        try:
            prometheus = LocalPrometheus(server.metrics_url, work_dir / "prometheus", port=prometheus_port).start()
        except (FileNotFoundError, RuntimeError):
            server.stop()
            raise
        print(f"  prometheus {prometheus.url} (the chart's alerts: {prometheus.url}/alerts)")
    if not block:
        return (server, prometheus) if prometheus else server

    def stop_on_signal(signum, _frame):  # SIGTERM (kubectl, systemd) and SIGINT even when inherited ignored
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    try:
        while server.running:
            time.sleep(1)
        raise CLIError(f"tritonserver {server.exit_reason}; see {server.log_path}")
    except KeyboardInterrupt:
        print("stopping")
    finally:
        if prometheus:
            prometheus.stop()
        server.stop()
    return None


def chat(audio: Path, out: Path, url: str | None = None, model: Path | None = None, stream: bool = False) -> dict:
    """Send one WAV to the server (or run `model` in-process), write the spoken reply, print the answer.
    `stream`: over gRPC streaming (url = Triton's gRPC port), writing audio chunks to `out` as they arrive.
    `url` defaults to Triton's local HTTP port, or its gRPC port with `stream`."""
    from components.audio.io import encode_wav, load_wav
    from serving.client import EmotionOmniClient

    url = url or f"127.0.0.1:{TRITON_GRPC_PORT if stream else TRITON_HTTP_PORT}"

    wave = load_wav(audio)  # refuse a bad file here, naming it, before anything is sent or loaded
    if stream:
        if model is not None:
            raise CLIError("--stream talks to a server (--url host:grpc-port); drop --model")
        answer = _chat_stream(Path(audio).read_bytes(), Path(out), url)
        print(json.dumps(answer, indent=2))
        return answer
    if model is not None:
        from components.inference import EmotionOmniResponder

        reply = EmotionOmniResponder.from_pretrained(model).respond(wave)
        answer = {
            "text": reply.text,
            "response_emotion": reply.response_emotion,
            "user_emotion": reply.user_emotion,
            "speech_note": reply.speech_note,
        }
        wav = encode_wav(reply.audio) if reply.audio.size else b""
    else:
        with EmotionOmniClient(url) as client:
            served = client.chat_file(audio)
        answer = {
            "text": served.text,
            "response_emotion": served.response_emotion,
            "user_emotion": served.user_emotion,
            "speech_note": served.speech_note,
            "latency_s": round(served.latency_s, 3),
        }
        wav = served.audio_wav
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(wav)
    answer["reply_wav"] = str(out)
    print(json.dumps(answer, indent=2))
    return answer


def _chat_stream(wav: bytes, out: Path, url: str) -> dict:
    """Stream a reply: print the text as soon as it comes, append each audio chunk to `out` as it arrives."""
    from components.audio.io import WavStreamWriter
    from components.contracts import SAMPLE_RATE
    from serving.stream_client import AudioChunk, EmotionOmniStreamClient, ReplyText, StreamEnd

    answer: dict = {}
    with EmotionOmniStreamClient(url) as client, WavStreamWriter(out) as sink:
        for event in client.chat_stream(wav):
            if isinstance(event, ReplyText):
                answer.update(
                    text=event.text,
                    response_emotion=event.response_emotion,
                    user_emotion=event.user_emotion,
                    speech_note=event.speech_note,
                    text_latency_s=round(event.latency_s, 3),
                )
                print(f"[{event.latency_s:.2f} s] {event.text} ({event.response_emotion})", file=sys.stderr)
            elif isinstance(event, AudioChunk):
                sink.write(event.samples)
                print(
                    f"[{event.latency_s:.2f} s] audio chunk {event.index}: {event.samples.size / SAMPLE_RATE:.2f} s",
                    file=sys.stderr,
                )
            elif isinstance(event, StreamEnd):
                answer.update(
                    first_audio_s=None if event.first_audio_s is None else round(event.first_audio_s, 3),
                    total_s=round(event.total_s, 3),
                    audio_s=event.audio_s,
                )
    answer["reply_wav"] = str(out)
    return answer


def lineage(
    ref: str, tracking_uri: str = "", data_dir: Path = DEFAULT_DATA_DIR, model_name: str | None = None
) -> list[str]:
    """Print the chain behind a lineage ID (a pipeline run) or a model version: runs, version, gate, TrainJobs, Triton.

    The registry is `tracking_uri`, else $MLFLOW_TRACKING_URI, else the demo's sqlite registry under `data_dir`."""
    from components.registry.config import RegistryConfig
    from components.registry.lineage import trace

    uri = registry_uri(tracking_uri, data_dir)
    if not uri:
        raise CLIError(
            f"no MLflow registry at {Path(data_dir).resolve() / 'mlflow.db'}: run `omni demo --data-dir {data_dir}` "
            "first, or pass --tracking-uri (or set MLFLOW_TRACKING_URI) for a cluster's registry"
        )
    config = RegistryConfig(uri, **({"model_name": model_name} if model_name else {}))  # else RegistryConfig's
    lines = trace(config, ref).lines()
    print("\n".join(lines))
    return lines


def compile_pipeline(out: Path = Path("pipeline.yaml"), settings=None) -> Path:
    """Write the IR YAML; `settings` (a ClusterSettings) defaults to the pipeline's defaults."""
    from pipelines.emotion_omni import ClusterSettings
    from pipelines.emotion_omni import compile_pipeline as compile_ir

    compile_ir(str(out), settings or ClusterSettings())
    print(f"compiled IR YAML: {out}")
    return Path(out)


def _print_submission(submission) -> None:
    what = "recurring run" if submission.kind == "recurring_run" else "run"
    print(
        f"submitted {what} '{submission.name}' ({submission.id}) in experiment {submission.experiment_id}"
        + (f", cron '{submission.cron}'" if submission.cron else "")
    )
    if submission.parameters:
        print("  parameters " + " ".join(f"{k}={v}" for k, v in sorted(submission.parameters.items())))
    print(f"  {submission.url}")


def submit_pipeline(
    host: str,
    package: Path | None = None,
    params: list[str] = (),
    run_name: str | None = None,
    experiment: str | None = None,
    enable_caching: bool | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    settings=None,
):
    """Start one run on the KFP at `host` (see pipelines/submit.py)."""
    from pipelines.emotion_omni import ClusterSettings
    from pipelines.submit import DEFAULT_EXPERIMENT, submit_run

    submission = submit_run(
        host,
        package,
        params=params,
        run_name=run_name,
        experiment=experiment or DEFAULT_EXPERIMENT,
        enable_caching=enable_caching,
        namespace=namespace,
        service_account=service_account,
        settings=settings or ClusterSettings(),
    )
    _print_submission(submission)
    return submission


def schedule_pipeline(
    host: str,
    cron: str,
    package: Path | None = None,
    job_name: str | None = None,
    max_concurrency: int = 1,
    params: list[str] = (),
    experiment: str | None = None,
    enable_caching: bool | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    settings=None,
):
    """Create a recurring run on the KFP at `host` (see pipelines/submit.py)."""
    from pipelines.emotion_omni import ClusterSettings
    from pipelines.submit import DEFAULT_EXPERIMENT, schedule_run

    submission = schedule_run(
        host,
        cron,
        package,
        job_name=job_name,
        max_concurrency=max_concurrency,
        params=params,
        experiment=experiment or DEFAULT_EXPERIMENT,
        enable_caching=enable_caching,
        namespace=namespace,
        service_account=service_account,
        settings=settings or ClusterSettings(),
    )
    _print_submission(submission)
    return submission


def cluster_settings(
    train_gpus: int | None = None,
    shared_pvc: str | None = None,
    shared_mount_path: str | None = None,
    trainjob_runtime: str | None = None,
    gpu_node_selector: list[str] = (),
    judge_secret: str | None = None,
):
    """ClusterSettings from compile flags: only the flags given override the defaults."""
    from pipelines.emotion_omni import ClusterSettings

    overrides = {
        k: v
        for k, v in {
            "train_gpus": train_gpus,
            "shared_pvc": shared_pvc,
            "shared_mount_path": shared_mount_path,
            "trainjob_runtime": trainjob_runtime,
            "judge_secret": judge_secret,
        }.items()
        if v is not None
    }
    selector = {}
    for pair in gpu_node_selector:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--gpu-node-selector {pair!r}: expected LABEL=VALUE, e.g. pool=a100")
        selector[key] = value
    if selector:
        overrides["gpu_node_selector"] = selector
    if overrides.get("train_gpus", 0) < 0:
        raise CLIError(f"--train-gpus {train_gpus}: must be >= 0")
    return ClusterSettings(**overrides)


# --- argument parsing ---------------------------------------------------------------------------------
# Where the config dataclasses whose defaults help texts quote live. Their modules import torch, transformers and
# mlflow (seconds), so they are imported only when a help text is printed, not at every `omni` start.
CONFIG_MODULES = {
    "SynthesisConfig": "components.synthesis.config",
    "TrainConfig": "components.training.config",
    "SpeechTrainConfig": "components.training.config",
    "EmotionOmniToken2WavConfig": "components.speech.config",
    "ProbeConfig": "components.evaluation.probe",
    "RegistryConfig": "components.registry.config",
    "ClusterSettings": "components.cluster.settings",
    "DeployConfig": "components.deploy.config",
}


def config_default(field: str):
    """The default of a config dataclass field named "Class.field" (a tuple joined with commas, as flags take it)."""
    import importlib

    class_name, _, name = field.partition(".")
    value = getattr(getattr(importlib.import_module(CONFIG_MODULES[class_name]), class_name), name)
    return ",".join(value) if isinstance(value, tuple) else value


class DefaultHelp(str):
    """A help text whose "{}"s argparse fills with config fields' defaults when it prints the help (it renders every
    help as `text % params`): the flag's default is the dataclass's, read where it is defined, and unset flags
    reach the command as None, so the command falls back to the same field."""

    def __new__(cls, text: str, *fields: str):
        help_text = super().__new__(cls, text)
        help_text.fields = fields
        return help_text

    def __mod__(self, params):
        return str.__mod__(self.format(*(config_default(field) for field in self.fields)), params)


def build_parser() -> argparse.ArgumentParser:
    """The `omni` parser: its command groups, and one builder below per command."""
    parser = argparse.ArgumentParser(
        prog="omni",
        description="Emotion Omni MLOps platform",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo_parser(sub)
    data = sub.add_parser("data", help="dataset commands").add_subparsers(dest="data_command", required=True)
    _add_synthesize_parser(data)
    _add_probe_parser(data)
    _add_train_parser(sub)
    speech = sub.add_parser("speech", help="speech-unit commands").add_subparsers(dest="speech_command", required=True)
    _add_speech_units_parser(speech)
    bench = sub.add_parser(
        "bench", help="benchmarks: a table and ratios against a baseline measured in the same run"
    ).add_subparsers(dest="bench_command", required=True)
    _add_bench_train_parser(bench)
    _add_bench_synthesize_parser(bench)
    _add_bench_serve_parser(bench)
    deploy_commands.add_bench_parser(bench)
    _add_evaluate_parser(sub)
    _add_lineage_parser(sub)
    _add_serve_parser(sub)
    deploy_commands.add_parsers(sub)
    _add_chat_parser(sub)
    pipeline = sub.add_parser("pipeline", help="Kubeflow pipeline commands").add_subparsers(
        dest="pipeline_command", required=True
    )
    cluster, remote = _cluster_flags(), _remote_flags()
    _add_pipeline_compile_parser(pipeline, cluster)
    _add_pipeline_submit_parser(pipeline, remote, cluster)
    _add_pipeline_schedule_parser(pipeline, remote, cluster)
    return parser


def _add_demo_parser(sub) -> None:
    from serving.repository import INSTANCE_KINDS  # light: no torch, no Triton

    p = sub.add_parser("demo", help="run the whole pipeline locally (kfp.local) and print a summary")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where runs, MLflow and models go")
    # Unset flags stay None: demo() then leaves the pipeline parameter at its default (the config dataclasses').
    p.add_argument("--n", type=int, help=DefaultHelp("dialogues to synthesize (default {})", "SynthesisConfig.n"))
    p.add_argument("--epochs", type=int, help=DefaultHelp("stage-1 epochs (default {})", "TrainConfig.epochs"))
    p.add_argument(
        "--nproc",
        type=int,
        help=DefaultHelp("DeepSpeed ranks (torchrun --nproc_per_node; default {})", "TrainConfig.nproc"),
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help=DefaultHelp("stop stage-1 training early (default {}; 0 runs all epochs)", "TrainConfig.max_steps"),
    )
    p.add_argument(
        "--speech-epochs",
        type=int,
        help=DefaultHelp("training stage 2 (the talker) epochs (default {})", "SpeechTrainConfig.epochs"),
    )
    p.add_argument(
        "--restyled-per-reply",
        type=int,
        help="speak each train reply in this many other "
        "emotions for stage 2 (slower; see components/speech/restyle.py)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=DefaultHelp("seeds synthesis, speech units and training (default {})", "SynthesisConfig.seed"),
    )
    p.add_argument("--gate", dest="gate_json", help='gate thresholds as JSON, e.g. {"min_chrf": 30}')
    p.add_argument(
        "--publish-uri",
        help="also upload the Triton repository to <uri>/<version>/ "
        "(s3://host:port/bucket/prefix; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    )
    p.add_argument(
        "--instance-kind",
        choices=tuple(INSTANCE_KINDS),
        help="instance kind of the published repository (gpu: KIND_GPU, for the chart's gpu profile; "
        "the local smoke test always serves on CPU)",
    )
    p.add_argument(
        "--no-deploy",
        action="store_true",
        help="skip the last step, the verified deploy into <data-dir>/serving (the repository `omni serve` serves)",
    )
    p.set_defaults(
        func=lambda a: demo(
            a.data_dir,
            a.n,
            a.epochs,
            a.nproc,
            a.max_steps,
            a.seed,
            a.gate_json,
            speech_epochs=a.speech_epochs,
            restyled_per_reply=a.restyled_per_reply,
            publish_uri=a.publish_uri,
            instance_kind=a.instance_kind,
            deploy=not a.no_deploy,
        )
    )


def _add_synthesize_parser(data) -> None:
    p = data.add_parser(
        "synthesize",
        help="synthesize the emotional dialogue set (espeak-ng, flite and festival "
        "user voices; espeak-ng replies), in resumable shards",
    )
    p.add_argument(
        "--out",
        required=True,
        help="dataset directory, or s3://host:port/bucket/prefix (credentials from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    )
    # Unset flags stay None: synthesize() then keeps SynthesisConfig's defaults, which the help texts quote.
    p.add_argument("--n", type=int, help=DefaultHelp("dialogues (default {})", "SynthesisConfig.n"))
    p.add_argument("--seed", type=int, help=DefaultHelp("default {}", "SynthesisConfig.seed"))
    p.add_argument(
        "--test-fraction",
        type=float,
        help=DefaultHelp("in-distribution test share per emotion (default {})", "SynthesisConfig.test_fraction"),
    )
    p.add_argument(
        "--unseen-voice-fraction",
        type=float,
        help=DefaultHelp(
            "share per emotion spoken only by held-out voices "
            "(components.synthesis.taxonomy.HELD_OUT_SPEAKERS), the unseen-voice split; 0: none (default {})",
            "SynthesisConfig.unseen_voice_fraction",
        ),
    )
    p.add_argument(
        "--engines",
        type=lambda v: v.split(","),
        help=DefaultHelp("user-voice TTS engines, comma-separated (default {})", "SynthesisConfig.engines"),
    )
    p.add_argument(
        "--workers",
        type=int,
        help=DefaultHelp("worker processes (default {}); the output does not depend on it", "SynthesisConfig.workers"),
    )
    p.add_argument(
        "--shard-size",
        type=int,
        help=DefaultHelp(
            "dialogues per shard, the unit a stopped build keeps (default {})", "SynthesisConfig.shard_size"
        ),
    )
    p.add_argument(
        "--text-backend",
        choices=("template", "llm"),
        help=DefaultHelp(
            "who writes the dialogues (default {}): template, the offline grammar, or llm, an OpenAI-compatible "
            "endpoint from OMNI_LLM_BASE_URL, OMNI_LLM_MODEL and OMNI_LLM_API_KEY (or OMNI_LLM_API_KEY_FILE)",
            "SynthesisConfig.text_backend",
        ),
    )
    p.add_argument(
        "--whisper-path",
        help="a local Whisper checkpoint for the ASR word-error-rate filter; without "
        "it that filter is skipped, and the card says so",
    )
    p.add_argument(
        "--filters",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="drop dialogues that fail the audio, speech-emotion and ASR checks (default on)",
    )
    p.add_argument(
        "--channels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put user turns through seeded telephone-band, codec, room, noise, level and clipping effects "
        "(components/audio/channels.py); each row's user_channel records its chain (default on)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous dataset in --out")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue a stopped build of the same settings from its finished shards (default on)",
    )
    p.set_defaults(
        func=lambda a: synthesize(
            a.out,
            a.n,
            a.seed,
            a.test_fraction,
            a.overwrite,
            a.channels,
            a.engines,
            a.unseen_voice_fraction,
            a.workers,
            a.shard_size,
            a.text_backend,
            a.filters,
            a.whisper_path,
            a.resume,
        )
    )


def _add_probe_parser(data) -> None:
    p = data.add_parser(
        "probe",
        help="train the model's user-emotion path alone (emotion encoder + classifier, "
        "stage 1's settings) in about a minute, and score a dataset's test and unseen-voice splits: "
        "how a change to the data generalizes, before a whole run",
    )
    p.add_argument(
        "--train",
        type=Path,
        action="append",
        required=True,
        help="a synthesized dataset whose train split the probe learns from (repeat to add more)",
    )
    p.add_argument(
        "--eval",
        type=Path,
        required=True,
        help="the dataset whose test and test_unseen_voice splits are scored (may be a --train one)",
    )
    # Unset flags stay None: probe() then keeps ProbeConfig's defaults, which the help texts quote.
    p.add_argument(
        "--train-turns",
        type=int,
        help=DefaultHelp("only the first N training turns (default {}; 0: all)", "ProbeConfig.train_turns"),
    )
    p.add_argument("--epochs", type=int, help=DefaultHelp("default: stage 1's ({})", "ProbeConfig.epochs"))
    p.add_argument("--seed", type=int, help=DefaultHelp("default {}", "ProbeConfig.seed"))
    p.add_argument("--out", type=Path, help="also write the result (accuracy per split and voice, confusion) as JSON")
    p.set_defaults(func=lambda a: probe(a.train, a.eval, a.train_turns, a.epochs, a.seed, a.out))


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train with DeepSpeed ZeRO over torchrun ranks and export the model")
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs, model/)")
    p.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: the thinker (text + emotion); 2: the talker + unit -> mel model on a frozen thinker",
    )
    p.add_argument("--init-model", type=Path, help="stage 2: the stage-1 model directory (RUN/model)")
    p.add_argument("--units", type=Path, help="stage 2: the speech units (`omni speech units`)")
    # Unset flags stay None: train() then keeps the --config file's values, else the stage's config defaults.
    p.add_argument(
        "--epochs",
        type=int,
        help=DefaultHelp(
            "default: --config's, else {} (stage 2: {})", "TrainConfig.epochs", "SpeechTrainConfig.epochs"
        ),
    )
    p.add_argument(
        "--nproc", type=int, help=DefaultHelp("torchrun ranks (default: --config's, else {})", "TrainConfig.nproc")
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help=DefaultHelp("stop early (default: --config's, else {}; 0 runs all epochs)", "TrainConfig.max_steps"),
    )
    p.add_argument(
        "--config",
        type=Path,
        help="a TrainConfig JSON (see components/training/config.py): ZeRO "
        "stage, LoRA (lora_r, llm_path), precision, checkpoint_uri, ...",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest complete checkpoint in OUT/checkpoints (or the config's "
        "checkpoint_uri) with the same config; without it a run starts over",
    )
    p.set_defaults(
        func=lambda a: train(
            a.dataset, a.out, a.epochs, a.nproc, a.max_steps, a.config, a.stage, a.init_model, a.units, a.resume
        )
    )


def _add_speech_units_parser(speech) -> None:
    p = speech.add_parser(
        "units",
        help="the reply audio's speech units, stage 2's targets: k-means (local "
        "token2wav) or a CosyVoice2 checkpoint's speech tokens",
    )
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--num-units", type=int, help=DefaultHelp("k-means K (default {})", "EmotionOmniToken2WavConfig.num_units")
    )
    p.add_argument(
        "--cosyvoice2",
        type=Path,
        help="a local CosyVoice2 checkpoint directory (cosyvoice.yaml, flow.pt, "
        "hift.pt, speech_tokenizer_v2.onnx, campplus.onnx): its tokens "
        "are the units and its flow + HiFT the vocoder",
    )
    p.add_argument("--prompt-wav", type=Path, help="with --cosyvoice2: the voice to imitate (zero-shot prompt)")
    p.add_argument(
        "--restyled-per-reply",
        type=int,
        default=0,
        help="also speak each train reply in this many "
        "other emotions, so the talker learns emotion from its vector, not the words (see "
        "components/speech/restyle.py for the measured cost)",
    )
    p.set_defaults(
        func=lambda a: speech_units(a.dataset, a.out, a.num_units, a.cosyvoice2, a.prompt_wav, a.restyled_per_reply)
    )


def _add_bench_train_parser(bench) -> None:
    p = bench.add_parser(
        "train",
        help="stage-1 training throughput and peak memory: single-process torch, torch DDP "
        "x2 and DeepSpeed ZeRO-1/2/3 x2, each against DDP",
    )
    p.add_argument("--dataset", type=Path, required=True, help="a synthesized dataset (`omni data synthesize`)")
    p.add_argument("--out", type=Path, required=True, help="where the table, JSON and plot go")
    p.add_argument("--modes", help="comma-separated subset, in run order (default: torch,ddp,zero1,zero2,zero3)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per mode (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument(
        "--config",
        type=Path,
        help="a TrainConfig JSON: the model, micro-batch and precision to measure "
        "(infra/gpu/qwen2-0.5b-bench.json: a 0.5B-class model for a GPU)",
    )
    p.add_argument(
        "--nproc",
        type=int,
        help=DefaultHelp(
            "ranks of the distributed modes (one per GPU on a GPU machine; default: --config's, else {})",
            "TrainConfig.nproc",
        ),
    )
    p.set_defaults(func=lambda a: bench_train(a.dataset, a.out, a.modes, a.steps, a.warmup, a.config, a.nproc))


def _add_bench_synthesize_parser(bench) -> None:
    p = bench.add_parser(
        "synthesize",
        help="dataset synthesis: dialogues/s with 1 and 2 worker processes, seconds "
        "per stage, and the wall time 200k dialogues would take on 16 cores",
    )
    p.add_argument("--out", type=Path, required=True, help="report directory (JSON, Markdown table, PNG)")
    p.add_argument("--n", type=int, default=120, help="dialogues per build")
    p.add_argument("--workers", default="1,2", help="worker counts to compare, the first is the baseline")
    p.add_argument("--shard-size", type=int, default=20)
    p.add_argument("--stage-sample", type=int, default=30, help="dialogues timed stage by stage")
    p.set_defaults(func=lambda a: bench_synthesize(a.out, a.n, a.workers, a.shard_size, a.stage_sample))


def _add_bench_serve_parser(bench) -> None:
    p = bench.add_parser(
        "serve",
        help="serving throughput and latency on a local tritonserver: one-at-a-time vs "
        "dynamic batching vs streaming at each concurrency, against one-at-a-time",
    )
    p.add_argument("--model", type=Path, required=True, help="an exported model directory")
    p.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="a synthesized dataset: its held-out user turns are what the clients send",
    )
    p.add_argument("--out", type=Path, required=True, help="where the table, JSON and plot go")
    p.add_argument(
        "--modes", help="comma-separated subset, in run order (default: one-at-a-time,dynamic-batching,streaming)"
    )
    p.add_argument("--concurrency", default="1,4,8,16", help="closed-loop clients per level (default 1,4,8,16)")
    p.add_argument(
        "--requests", type=int, default=32, help="replies timed per level, at least 2 per client (default 32)"
    )
    p.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead: drive dynamic batching this long (at "
        "most 120) and check 0 errors and server RSS growth under 10%%",
    )
    p.add_argument("--soak-concurrency", type=int, default=8, help="clients during --soak (default 8)")
    p.set_defaults(
        func=lambda a: bench_serve(
            a.model, a.dataset, a.out, a.modes, a.concurrency, a.requests, a.soak, a.soak_concurrency
        )
    )


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics, confusion matrices and a report on a held-out split")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=lambda a: evaluate(a.model, a.dataset, a.out, a.split, a.limit))


def _add_lineage_parser(sub) -> None:
    p = sub.add_parser(
        "lineage",
        help="the whole chain behind a pipeline run's lineage ID or a model version: "
        "MLflow runs, the version, its gate decision, TrainJobs, the Triton repository",
    )
    p.add_argument("ref", help="a lineage ID (the KFP run id the demo summary prints) or a model version number")
    p.add_argument(
        "--tracking-uri",
        default="",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the demo's registry under --data-dir)",
    )
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--model-name", help=DefaultHelp("registered model name (default {})", "RegistryConfig.model_name"))
    p.set_defaults(func=lambda a: lineage(a.ref, a.tracking_uri, a.data_dir, a.model_name))


def _add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="start tritonserver (127.0.0.1) on a model or model repository")
    p.add_argument("--model", type=Path, help="an exported model directory")
    p.add_argument("--model-repository", type=Path, help="a Triton model repository (e.g. from the pipeline)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=TRITON_HTTP_PORT)
    p.add_argument("--grpc-port", type=int, default=TRITON_GRPC_PORT)
    p.add_argument("--metrics-port", type=int, default=TRITON_METRICS_PORT)
    p.add_argument(
        "--prometheus",
        action="store_true",
        help="also run a local Prometheus (Debian's package) that "
        "scrapes this server with the Helm chart's alert rules: the metrics and alerts an SRE sees",
    )
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.set_defaults(
        func=lambda a: serve(
            a.model,
            a.model_repository,
            a.http_port,
            a.grpc_port,
            a.metrics_port,
            a.host,
            prometheus_port=a.prometheus_port if a.prometheus else None,
        )
    )


def _add_chat_parser(sub) -> None:
    p = sub.add_parser("chat", help="send a WAV, get the reply text, emotions and a spoken reply WAV")
    p.add_argument("--audio", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--url",
        help=f"Triton host:port: HTTP (default 127.0.0.1:{TRITON_HTTP_PORT}), or gRPC with --stream (default "
        f"127.0.0.1:{TRITON_GRPC_PORT})",
    )
    p.add_argument("--model", type=Path, help="run this exported model in-process instead of calling a server")
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream the reply (gRPC, emotion_omni_stream): the text "
        "first, then audio chunks written to --out as they arrive; prints the first-audio latency",
    )
    p.set_defaults(func=lambda a: chat(a.audio, a.out, a.url, a.model, a.stream))


def _cluster_flags() -> argparse.ArgumentParser:
    """Compile-time cluster settings (components/cluster/settings.py ClusterSettings), shared by compile, submit
    and schedule."""
    cluster = argparse.ArgumentParser(add_help=False)
    group = cluster.add_argument_group("cluster settings (compiled into the IR)")
    group.add_argument(
        "--train-gpus",
        type=int,
        help=DefaultHelp(
            "GPUs of the train step's pod (default {}; 0 where only TrainJobs train)", "ClusterSettings.train_gpus"
        ),
    )
    group.add_argument(
        "--shared-pvc",
        help="ReadWriteMany PVC for train_backend=trainjob, mounted into the train step and the TrainJob nodes",
    )
    group.add_argument(
        "--shared-mount-path",
        help=DefaultHelp("where that PVC is mounted (default {})", "ClusterSettings.shared_mount_path"),
    )
    group.add_argument(
        "--trainjob-runtime",
        help=DefaultHelp("ClusterTrainingRuntime for TrainJobs (default {})", "ClusterSettings.trainjob_runtime"),
    )
    group.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="node label for GPU pods (train step, TrainJob nodes); repeatable",
    )
    group.add_argument(
        "--judge-secret",
        help="Secret with OMNI_JUDGE_BASE_URL, OMNI_JUDGE_MODEL and "
        "OMNI_JUDGE_API_KEY for the empathy judge (default: none, "
        "empathy_score not computed)",
    )
    return cluster


def _cluster_settings_from_flags(a: argparse.Namespace):
    """ClusterSettings from the cluster flags (refused beside --package, which is sent as compiled)."""
    given = [
        a.train_gpus,
        a.shared_pvc,
        a.shared_mount_path,
        a.trainjob_runtime,
        a.judge_secret,
    ] + a.gpu_node_selector
    if getattr(a, "package", None) and any(v is not None for v in given):
        raise CLIError(
            "--package is sent as it was compiled: give the cluster settings flags to "
            "`omni pipeline compile` instead, or drop --package"
        )
    return cluster_settings(
        a.train_gpus, a.shared_pvc, a.shared_mount_path, a.trainjob_runtime, a.gpu_node_selector, a.judge_secret
    )


def _add_pipeline_compile_parser(pipeline, cluster) -> None:
    p = pipeline.add_parser("compile", parents=[cluster], help="compile the pipeline to KFP IR YAML for a cluster")
    p.add_argument("--out", type=Path, default=Path("pipeline.yaml"))
    p.set_defaults(func=lambda a: compile_pipeline(a.out, _cluster_settings_from_flags(a)))


def _remote_flags() -> argparse.ArgumentParser:
    """What submit and schedule share: where, what, with which parameters."""
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--host",
        required=True,
        help="KFP API URL, e.g. http://127.0.0.1:8080 (credentials from KF_PIPELINES_SA_TOKEN_PATH, never a flag)",
    )
    remote.add_argument(
        "--package",
        type=Path,
        help="a compiled IR YAML to send (default: compile now, with the cluster settings given)",
    )
    remote.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline parameter, typed by the pipeline (repeatable), e.g. epochs=5",
    )
    remote.add_argument("--experiment", help="experiment name (default emotion-omni; created if missing)")
    remote.add_argument("--namespace", help="profile namespace on a multi-user Kubeflow")
    remote.add_argument(
        "--service-account",
        help="ServiceAccount the run's pods use (train_backend=trainjob "
        "needs pipelines/rbac/trainjob-launcher.yaml bound to it)",
    )
    caching = remote.add_mutually_exclusive_group()
    caching.add_argument(
        "--enable-caching",
        dest="enable_caching",
        action="store_true",
        default=None,
        help="reuse cached step results (default: as compiled, i.e. on)",
    )
    caching.add_argument("--disable-caching", dest="enable_caching", action="store_false", help="run every step again")
    return remote


def _add_pipeline_submit_parser(pipeline, remote, cluster) -> None:
    p = pipeline.add_parser("submit", parents=[remote, cluster], help="start a run on a Kubeflow Pipelines endpoint")
    p.add_argument("--run-name", help="default: emotion-omni <UTC time>")
    p.set_defaults(
        func=lambda a: submit_pipeline(
            a.host,
            a.package,
            a.param,
            a.run_name,
            a.experiment,
            a.enable_caching,
            a.namespace,
            a.service_account,
            _cluster_settings_from_flags(a),
        )
    )


def _add_pipeline_schedule_parser(pipeline, remote, cluster) -> None:
    p = pipeline.add_parser("schedule", parents=[remote, cluster], help="create a recurring run (cron schedule)")
    p.add_argument(
        "--cron",
        required=True,
        help='5 fields, e.g. "0 3 * * *" (03:00 daily; sent to KFP with a leading seconds field), or KFP\'s 6',
    )
    p.add_argument("--job-name", help="recurring run name (default: emotion-omni (<cron>))")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule at once (default 1)")
    p.set_defaults(
        func=lambda a: schedule_pipeline(
            a.host,
            a.cron,
            a.package,
            a.job_name,
            a.max_concurrency,
            a.param,
            a.experiment,
            a.enable_caching,
            a.namespace,
            a.service_account,
            _cluster_settings_from_flags(a),
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done; 2 a user error (an OmniError: its message names the problem and the fix,
    so no traceback); 1 anything else, a bug: the traceback and the command line, to report; 130 interrupted."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach the hub; fail fast instead of hanging
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except OmniError as error:
        print(f"omni: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omni: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        command = shlex.join(["omni", *(sys.argv[1:] if argv is None else argv)])
        print(
            "omni: internal error: this is a bug in omni, not a mistake in what you gave it. Please report it with "
            f"the traceback above and the command: {command}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
