"""The distributed training process: one copy per rank under torchrun (locally) or a Kubeflow TrainJob.

    torchrun --nproc_per_node 2 -m components.training.worker --run-dir RUN --dataset DATA [--resume]

RUN must hold train_config.json and tokenizer.json (and, for stage 2, RUN/init), written by
components.training.prepare. Rank 0 logs the losses to RUN/train_log.jsonl (and serves them on `metrics_port`),
every rank writes its part of the checkpoints to RUN/checkpoints (see checkpoints.py), and at the end all ranks
gather the weights (any ZeRO stage) and rank 0 exports them to RUN/model (config.json + model.safetensors +
tokenizer.json), then checks that the exported model reproduces the engine's loss. Stage 1 trains the thinker;
stage 2 loads it from the stage-1 model, freezes it, and trains the talker and the token2wav's unit -> mel model.

A run is three parts, one module each: setup (session.py), the loop (loop.py) and the export (export_run.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from components.training.export_run import export_run
from components.training.loop import TrainLoop
from components.training.session import start_session


def train_worker(run_dir: Path, dataset_dir: Path, resume: bool = False) -> None:
    """Train this rank's share of the run in `run_dir` on `dataset_dir`, then export the model (rank 0)."""
    session = start_session(run_dir, dataset_dir, resume)
    elapsed_s = TrainLoop(session).run()
    export_run(session, elapsed_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints' newest complete one")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train_worker(args.run_dir, args.dataset, args.resume)


if __name__ == "__main__":
    main()
