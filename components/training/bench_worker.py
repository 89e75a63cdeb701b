"""One benchmark rank: train the run's model for a fixed number of steps under one parallelism mode, time it.

    torchrun --nproc_per_node N -m components.training.bench_worker --run-dir RUN --dataset DATA --mode zero2 ...

Modes: `torch` (one process, plain torch), `ddp` (torch DistributedDataParallel), `zero1`/`zero2`/`zero3` (DeepSpeed).
Every mode builds the same model (RUN/train_config.json, same seed), reads the same data with the same per-rank
micro-batch, clips gradients at the same norm and steps the same AdamW, so the numbers differ only by how the work
is parallelised. Rank 0 writes OUT (JSON). Warm-up steps (allocator, DeepSpeed's buckets) are not timed. On a GPU
machine each rank takes one GPU (NCCL) and the row carries peak GPU memory and MFU (see flops.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from components.contracts import TOKENIZER_FILE, TRAIN_CONFIG_FILE
from components.errors import ConfigError
from components.model.tokenizer import load_tokenizer
from components.training.config import TrainConfig, deepspeed_config
from components.training.consolidate import parameter_counts
from components.training.data import collate, to_device, train_split
from components.training.flops import batch_tokens, flops_per_token, peak_tflops
from components.training.model_setup import build_model, param_groups
from components.training.ranks import join_process_group

MODES = ("torch", "ddp", "zero1", "zero2", "zero3")


def _batches(loader, sampler):
    epoch = 0
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def run(run_dir: Path, dataset_dir: Path, mode: str, steps: int, warmup: int, out: Path) -> None:
    """Time `steps` optimizer steps (after `warmup` untimed ones) of the run's model under `mode`; rank 0 writes
    the row to `out`."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: use one of {MODES}")
    config = TrainConfig.load(run_dir / TRAIN_CONFIG_FILE)
    distributed = mode != "torch"
    joined = join_process_group(deepspeed=mode.startswith("zero"), distributed=distributed)
    rank, world, device = joined.rank, joined.world, joined.device
    torch.manual_seed(config.seed)

    model, speech = build_model(config, run_dir)
    per_token = flops_per_token(model)  # before DeepSpeed wraps (and under ZeRO-3 partitions) it
    dataset = train_split(dataset_dir, config.model.thinker_config, load_tokenizer(run_dir / TOKENIZER_FILE), speech)
    sampler = (
        DistributedSampler(dataset, world, rank, seed=config.seed)
        if distributed
        else RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed))
    )
    loader = DataLoader(dataset, batch_size=config.micro_batch_size, sampler=sampler, collate_fn=collate)
    optimizer = torch.optim.AdamW(param_groups(model, config), weight_decay=config.weight_decay)
    step = _step_function(mode, config, model, optimizer, device)

    model.train()
    for index in sampler:  # the dataset computes each item's log-mel once and caches it: time training only
        dataset[index]
    batches = _batches(loader, sampler)
    for _ in range(warmup):
        step(to_device(next(batches), device, config.compute_dtype))
    samples = tokens = 0
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        loss = step(to_device(batch, device, config.compute_dtype))
        samples += len(batch["response_ids"])
        tokens += batch_tokens(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    totals = _across_ranks(samples, tokens, seconds, device, world if distributed else 1)
    if rank == 0:
        row = _row(mode, world, steps, config, totals, device, per_token, parameter_counts(model)[0])
        Path(out).write_text(json.dumps({**row, "final_loss": round(float(loss), 4)}) + "\n")
    if distributed:
        dist.barrier()  # the row is written; every rank is done
        # End here, without destructors: freeing DDP's Reducer destroys the gloo group, whose destructor joins a
        # thread that needs the GIL to free a finished all_gather, while this thread holds it. A fresh clone's
        # test run hung there for good (py-spy: ~ProcessGroupGloo in std::thread::join, 2026-11-29).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _step_function(mode: str, config: TrainConfig, model, optimizer, device: torch.device):
    """One optimizer step on a batch, returning its loss: DeepSpeed's engine for the zero modes, else plain torch
    (DDP for `ddp`) with the same gradient clipping DeepSpeed applies."""
    if mode.startswith("zero"):
        import deepspeed

        ds_config = deepspeed_config(dataclasses.replace(config, zero_stage=int(mode[-1]), grad_accum_steps=1))
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)

        def step(batch) -> torch.Tensor:
            out = engine(**batch)
            engine.backward(out.loss)
            engine.step()
            return out.loss

        return step
    if config.precision == "bf16":  # DeepSpeed's bf16 mode keeps fp32 master weights; autocast is torch's way
        raise ConfigError("bench modes torch/ddp run fp32 only: compare bf16 among the zero modes")
    model.to(device)
    module = torch.nn.parallel.DistributedDataParallel(model) if mode == "ddp" else model

    def step(batch) -> torch.Tensor:
        out = module(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss

    return step


@dataclass
class _Totals:
    samples: int  # all ranks'
    tokens: int
    seconds: float  # the slowest rank's: it sets the pace
    rss_per_rank: list[int]  # peak resident memory, bytes
    gpu_per_rank: list[int]  # peak GPU memory, bytes (0 on CPU)


def _across_ranks(samples: int, tokens: int, seconds: float, device: torch.device, world: int) -> _Totals:
    """This rank's counts and peaks joined with every other rank's (one all-gather; none for one process)."""
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_gpu = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    if world == 1:
        return _Totals(samples, tokens, seconds, [peak_rss], [peak_gpu])
    mine = torch.tensor([samples, tokens, peak_rss, seconds, peak_gpu], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return _Totals(
        samples=sum(int(g[0]) for g in gathered),
        tokens=sum(int(g[1]) for g in gathered),
        seconds=max(float(g[3]) for g in gathered),
        rss_per_rank=[int(g[2]) for g in gathered],
        gpu_per_rank=[int(g[4]) for g in gathered],
    )


def _row(
    mode: str,
    world: int,
    steps: int,
    config: TrainConfig,
    totals: _Totals,
    device: torch.device,
    per_token_flops: float,
    parameters: int,
) -> dict:
    """The benchmark's row for this mode (bench.py tabulates and plots the rows)."""
    tflops = totals.tokens / totals.seconds * per_token_flops / 1e12
    peak = peak_tflops(config.precision)
    on_gpu = device.type == "cuda"
    return {
        "mode": mode,
        "world_size": world,
        "steps": steps,
        "micro_batch_size": config.micro_batch_size,
        "seconds": round(totals.seconds, 3),
        "samples": totals.samples,
        "tokens": totals.tokens,
        "samples_per_s": round(totals.samples / totals.seconds, 2),
        "tokens_per_s": round(totals.tokens / totals.seconds, 1),
        "peak_rss_bytes": sum(totals.rss_per_rank),
        "peak_rss_per_rank_bytes": totals.rss_per_rank,
        "peak_gpu_bytes": max(totals.gpu_per_rank) if on_gpu else None,
        "device": str(device.type),
        "precision": config.precision,
        "achieved_tflops": round(tflops, 4),
        "mfu": round(tflops / (peak * world), 4) if peak else None,  # None: no known peak (CPU)
        "parameters": parameters,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run(args.run_dir, args.dataset, args.mode, args.steps, args.warmup, args.out)


if __name__ == "__main__":
    main()
