"""train(): prepare a run directory, launch the DeepSpeed workers with torchrun, collect the results.

The parent process trains the tokenizer and fixes the model config (so every rank builds the same model),
then runs `torchrun --nproc_per_node N -m components.training.worker`, teeing its output to RUN/train.log.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from components.contracts import LOSS_CURVE_FILE, TRAIN_LOG_FILE, TRAIN_MODEL_DIR, TRAIN_SUMMARY_FILE
from components.cpu import thread_env
from components.errors import ConfigError, OmniError
from components.training.build_lock import clear_stale_build_locks
from components.training.checkpoints import (
    CHECKPOINT_DIR,
    CheckpointInfo,
    check_resumable,
    latest_complete,
)
from components.training.config import TrainConfig
from components.training.mirror import CheckpointMirror
from components.training.ops import EXTENSIONS_DIR
from components.training.plots import plot_loss_curve
from components.training.prepare import prepare_run


class TrainingError(OmniError, RuntimeError):
    """The distributed run failed; the message carries the tail of its log."""


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path  # the exported model (config.json + model.safetensors + tokenizer.json)
    log_path: Path  # per-step losses, JSON lines
    loss_curve: Path  # PNG
    summary: dict  # steps, throughput, parameter count, ...
    wall_seconds: float  # including process start-up and DeepSpeed op compilation

    @classmethod
    def of_run(cls, run_dir: Path, started: float, summary: dict | None = None) -> TrainResult:
        """The result of the finished run in `run_dir` (its summary file unless `summary` is given), its loss curve
        drawn; `started` is the time.time() the caller's training began."""
        summary = summary if summary is not None else json.loads((run_dir / TRAIN_SUMMARY_FILE).read_text())
        loss_curve = plot_loss_curve(run_dir / TRAIN_LOG_FILE, run_dir / LOSS_CURVE_FILE)
        return cls(
            run_dir,
            run_dir / TRAIN_MODEL_DIR,
            run_dir / TRAIN_LOG_FILE,
            loss_curve,
            summary,
            round(time.time() - started, 2),
        )


# A rank's own exception line, e.g. "[rank1]: components.audio.io.AudioError: ...".
_RANK_ERROR = re.compile(r"^\[rank\d+\]: [\w.]*(Error|Exception)\b.*")


def first_rank_error(lines: Iterable[str]) -> str | None:
    """The first exception a rank raised, from log lines: the other ranks then fail only on closed connections, so
    the first one that is not about a closed connection is the root cause. None when no rank reported one."""
    return next((line for line in lines if _RANK_ERROR.match(line) and "Connection closed by peer" not in line), None)


def _root_cause(log_path: Path) -> str:
    return (
        first_rank_error(log_path.read_text(errors="replace").splitlines())
        or "no rank reported an exception (killed for memory? see the log)"
    )


def resume_point(run_dir: Path, config: TrainConfig, world_size: int, resume: bool) -> CheckpointInfo | None:
    """Before any rank starts: with `resume`, the checkpoint the ranks will load (pulled from the mirror when it
    is newer), checked against this run's config and size. Without, a fresh start, refused where an earlier run's
    complete checkpoints would be overwritten (a killed run restarted without --resume would lose them)."""
    checkpoints = Path(run_dir) / CHECKPOINT_DIR
    mirror = CheckpointMirror(config.checkpoint_uri) if config.checkpoint_uri else None
    if not resume:
        if mirror and mirror.tags():
            raise ConfigError(
                f"checkpoint_uri {config.checkpoint_uri} already holds checkpoints: resume from them "
                "(--resume) or give this run its own checkpoint_uri"
            )
        if (earlier := latest_complete(checkpoints)) is not None:
            raise ConfigError(
                f"{checkpoints} holds an earlier run's checkpoints (newest: step "
                f"{earlier.position.step}): pass --resume to continue it, or another --out (or delete "
                "that directory) to start over"
            )
        shutil.rmtree(checkpoints, ignore_errors=True)  # debris without a complete checkpoint
        return None
    checkpoints.mkdir(parents=True, exist_ok=True)
    info = mirror.pull_latest(checkpoints) if mirror else None
    info = latest_complete(checkpoints) if info is None else info
    if info is None:
        print(
            f"resume: no complete checkpoint in {checkpoints}"
            + (f" or {config.checkpoint_uri}" if mirror else "")
            + "; starting at step 0",
            file=sys.stderr,
        )
        return None
    check_resumable(info, config, world_size)
    print(
        f"resume: continuing from {info.tag} (epoch {info.position.epoch}, step {info.position.step})", file=sys.stderr
    )
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(nproc: int) -> dict[str, str]:
    """Environment for the ranks: split the cores between them, DeepSpeed on CPU, ops cached across runs."""
    env = thread_env(share=nproc)  # the cores this pod may use (its CPU quota, not the node's), split by rank
    env.setdefault("DS_ACCELERATOR", "cpu" if not _has_cuda() else "cuda")
    # DeepSpeed JIT-compiles a shared-memory op on first CPU use (ops.py; infra/setup.sh builds it at install).
    env.setdefault("TORCH_EXTENSIONS_DIR", str(EXTENSIONS_DIR))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    # DeepSpeed calls torch.distributed's renamed collectives on every ZeRO step: one deprecation line per call.
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning:torch.distributed.c10d_logger")
    return env


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig | None = None,
    *,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Run DeepSpeed training of Emotion Omni on `dataset_dir`'s train split; results land in `run_dir`.

    Stage 2 (`config.stage == 2`) also needs `init_model` (the stage-1 model) and `speech_units`. `resume`
    continues from the newest complete checkpoint in RUN/checkpoints (or `config.checkpoint_uri`), if any."""
    config = config or TrainConfig()
    dataset_dir, run_dir = Path(dataset_dir).resolve(), Path(run_dir).resolve()
    start = time.time()
    prepare_run(dataset_dir, run_dir, config, init_model, speech_units, resume=resume)
    resume_point(run_dir, config, config.nproc, resume)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={config.nproc}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "components.training.worker",
        "--run-dir",
        str(run_dir),
        "--dataset",
        str(dataset_dir),
    ]
    cmd += ["--resume"] if resume else []
    env = worker_env(config.nproc)
    # A build of DeepSpeed's op killed in an earlier run left its lock: the ranks would wait on it forever.
    clear_stale_build_locks(Path(env["TORCH_EXTENSIONS_DIR"]))
    tail: deque[str] = deque(maxlen=40)
    with (
        open(run_dir / "train.log", "w") as log,
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc,
    ):
        for line in proc.stdout:  # tee: the user sees progress, the run keeps the log
            sys.stderr.write(line)
            log.write(line)
            tail.append(line.rstrip())
        code = proc.wait()
    if code != 0:
        # A rank out of disk mid-checkpoint raised CheckpointDiskFullError (checkpoints.saving): the root cause says so.
        raise TrainingError(
            f"training failed (torchrun exit {code}): {_root_cause(run_dir / 'train.log')}\n"
            f"full log: {run_dir / 'train.log'}; its end:\n" + "\n".join(tail)
        )
    return TrainResult.of_run(run_dir, start)
