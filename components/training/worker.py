"""The distributed training process: one copy per rank under torchrun (locally) or a Kubeflow TrainJob.

    torchrun --nproc_per_node 2 -m components.training.worker --run-dir RUN --dataset DATA

RUN must hold train_config.json and tokenizer.json (written by components.training.launch). Rank 0 logs the
loss curve to RUN/train_log.jsonl, DeepSpeed writes ZeRO checkpoints to RUN/checkpoints, and rank 0 exports the
final weights to RUN/model (config.json + model.safetensors + tokenizer.json).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from components.export.pretrained import parameter_count, save_pretrained
from components.model.modeling import EmotionOmniModel
from components.model.tokenizer import load_tokenizer
from components.synthesis import read_manifest
from components.training.config import (
    CONFIG_FILE, LOG_FILE, SUMMARY_FILE, TOKENIZER_FILE, TrainConfig, deepspeed_config,
)
from components.training.data import DialogueDataset, collate, to_device

def _param_groups(model: EmotionOmniModel, config: TrainConfig) -> list[dict]:
    """Two learning rates as in the paper: the LLM's, and the rest (encoders, adapters, heads)."""
    llm, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (llm if name.startswith("llm.") else rest).append(param)
    groups = [{"params": llm, "lr": config.lr_llm}, {"params": rest, "lr": config.lr_modules}]
    return [g for g in groups if g["params"]]


def _schedule(total_steps: int, warmup_ratio: float):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:  # linear warm-up, then cosine to 10 %
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def _mean_across_ranks(values: list[float]) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).tolist()


def train_worker(run_dir: Path, dataset_dir: Path) -> None:
    import deepspeed  # heavy; imported only in the training processes

    config = TrainConfig.load(run_dir / CONFIG_FILE)
    # NCCL between GPUs (a TrainJob on a GPU node pool); gloo on CPU (local runs, CI).
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(config.seed)  # same init everywhere; DeepSpeed also broadcasts rank 0's weights

    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    model = EmotionOmniModel(config.model)
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == "train"]
    dataset = DialogueDataset(rows, dataset_dir, config.model, tokenizer)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.micro_batch_size, sampler=sampler, collate_fn=collate)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum_steps)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    optimizer = torch.optim.AdamW(_param_groups(model, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, config.warmup_ratio))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(config))

    log = open(run_dir / LOG_FILE, "w") if rank == 0 else None
    # mininterval: through torchrun and kfp every refresh becomes a log line; one per 2 s is plenty.
    bar = tqdm(total=total_steps, desc="train", unit="step", disable=rank != 0, mininterval=2.0)
    start, step, samples = time.time(), 0, 0
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        engine.train()
        for batch in loader:
            out = engine(**to_device(batch, engine.device))  # DeepSpeed moves the model, not the inputs
            engine.backward(out.loss)
            engine.step()
            samples += len(batch["response_ids"]) * world
            if not engine.is_gradient_accumulation_boundary():
                continue
            step += 1
            if step % config.log_every_steps == 0 or step == total_steps:
                loss, text, emo, user = _mean_across_ranks([
                    out.loss.item(), out.text_loss.item(), out.emotion_loss.item(), out.user_emotion_loss.item()])
                if log:
                    log.write(json.dumps({
                        "step": step, "epoch": epoch, "loss": loss, "text_loss": text, "emotion_loss": emo,
                        "user_emotion_loss": user, "lr": scheduler.get_last_lr()[0],
                        "elapsed_s": round(time.time() - start, 2)}) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{loss:.3f}", text=f"{text:.3f}", epoch=epoch)
            bar.update(1)
            if step >= total_steps:
                break
        last = step >= total_steps or epoch == config.epochs - 1
        if last or (epoch + 1) % config.checkpoint_every_epochs == 0:
            engine.save_checkpoint(str(run_dir / "checkpoints"), tag=f"epoch{epoch + 1}")
        if step >= total_steps:
            break
    bar.close()
    elapsed = time.time() - start

    if rank == 0:
        log.close()
        # ZeRO-2 shards optimizer state and gradients, not parameters: rank 0 holds the full weights.
        save_pretrained(engine.module, tokenizer, run_dir / "model",
                        metadata={"steps": step, "epochs": epoch + 1, "zero_stage": config.zero_stage})
        (run_dir / SUMMARY_FILE).write_text(json.dumps({
            "steps": step, "epochs_run": epoch + 1, "world_size": world, "train_samples": len(dataset),
            "samples_seen": samples, "train_seconds": round(elapsed, 2),
            "samples_per_second": round(samples / max(elapsed, 1e-9), 2),
            "parameters": parameter_count(engine.module), "zero_stage": config.zero_stage,
        }, indent=2) + "\n")
    dist.barrier()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train_worker(args.run_dir, args.dataset)


if __name__ == "__main__":
    main()
