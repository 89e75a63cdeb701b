"""Progress: what a run reports while it trains, in one place.

Every `log_every_steps` optimizer steps the ranks average their losses and add up their samples and tokens
(one all-reduce); rank 0 then appends a row to RUN/train_log.jsonl, updates the live Prometheus metrics
(metrics.py, when `metrics_port` is set) and the progress bar. Throughput is over the interval since the last row,
so a slow start (feature caching, DeepSpeed's first buckets) fades out instead of dragging the whole run's mean.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from components.contracts import TRAIN_LOG_FILE
from components.training.config import TrainConfig
from components.training.flops import batch_tokens


class Progress:
    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        total_steps: int,
        start_step: int,
        flops_per_token: float,
        peak_tflops: float | None,
    ):
        self.config, self.total_steps = config, total_steps
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.flops_per_token, self.peak_tflops = flops_per_token, peak_tflops
        rank0 = self.rank == 0
        self.log = _open_log(Path(run_dir) / TRAIN_LOG_FILE, start_step) if rank0 else None
        self.metrics = None
        if rank0 and config.metrics_port:
            from components.training.metrics import TrainMetrics

            self.metrics = TrainMetrics(
                config.metrics_port, run=os.environ.get("OMNI_RUN_ID", Path(run_dir).name), stage=config.stage
            )
        # mininterval: through torchrun and kfp every refresh becomes a log line; one per 2 s is plenty.
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            desc=f"train stage {config.stage}",
            unit="step",
            disable=not rank0,
            mininterval=2.0,
        )
        self.since, self.samples, self.tokens = time.time(), 0, 0

    def micro_batch(self, batch: dict) -> None:
        self.samples += len(batch["response_ids"])
        self.tokens += batch_tokens(batch)

    def step(
        self, step: int, epoch: int, losses: dict[str, torch.Tensor], lrs: dict[str, float], elapsed_s: float
    ) -> None:
        """After optimizer step `step`: every rank calls it; on a logging step they all join the all-reduce."""
        self.bar.update(1)
        if step % self.config.log_every_steps and step != self.total_steps:
            return
        values = [v.item() for v in losses.values()] + [self.samples, self.tokens]
        sums = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(sums)
        means = {name: value / self.world for name, value in zip(losses, sums.tolist())}
        seconds = max(time.time() - self.since, 1e-9)
        samples_s, tokens_s = float(sums[-2]) / seconds, float(sums[-1]) / seconds
        tflops = tokens_s * self.flops_per_token / 1e12
        mfu = tflops / (self.peak_tflops * self.world) if self.peak_tflops else None  # None: no known peak (CPU)
        self.since, self.samples, self.tokens = time.time(), 0, 0
        if self.log:
            self.log.write(
                json.dumps(
                    {
                        "step": step,
                        "epoch": epoch,
                        **means,
                        "lr": next(iter(lrs.values())),
                        "samples_per_s": round(samples_s, 2),
                        "tokens_per_s": round(tokens_s, 1),
                        "tflops": round(tflops, 6),
                        "elapsed_s": round(elapsed_s, 2),
                    }
                )
                + "\n"
            )
            self.log.flush()
        if self.metrics:
            self.metrics.progress(step, self.total_steps, means, lrs, samples_s, tokens_s, tflops, mfu)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:3]} | {"epoch": epoch})

    def checkpoint(self, step: int) -> None:
        if self.metrics:
            self.metrics.checkpoint(step)

    def close(self) -> None:
        self.bar.close()
        if self.log:
            self.log.close()
        if self.metrics:
            self.metrics.close()


def _open_log(path: Path, keep_until_step: int):
    """The loss log, opened for appending after the rows up to `keep_until_step` (a resumed run drops the rows the
    killed run wrote after its last complete checkpoint: it trains those steps again)."""
    rows = []
    if keep_until_step and path.is_file():
        rows = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= keep_until_step
        ]
    log = open(path, "w")
    log.write("".join(row + "\n" for row in rows))
    return log
