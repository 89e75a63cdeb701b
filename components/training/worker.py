"""The distributed training process: one copy per rank under torchrun (locally) or a Kubeflow TrainJob.

    torchrun --nproc_per_node 2 -m components.training.worker --run-dir RUN --dataset DATA [--resume]

RUN must hold train_config.json and tokenizer.json (and, for stage 2, RUN/init), written by
components.training.prepare. Rank 0 logs the losses to RUN/train_log.jsonl (and serves them on `metrics_port`),
every rank writes its part of the checkpoints to RUN/checkpoints (see checkpoints.py), and at the end all ranks
gather the weights (any ZeRO stage) and rank 0 exports them to RUN/model (config.json + model.safetensors +
tokenizer.json), then checks that the exported model reproduces the engine's loss. Stage 1 trains the thinker;
stage 2 loads it from the stage-1 model, freezes it, and trains the talker and the token2wav's unit -> mel model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from components.contracts import TOKENIZER_FILE, TRAIN_CONFIG_FILE, TRAIN_SUMMARY_FILE
from components.export.pretrained import save_pretrained
from components.model.modeling import EmotionOmniForConditionalGeneration, EmotionOmniOutput
from components.model.tokenizer import load_tokenizer
from components.synthesis import read_manifest
from components.training.checkpoints import (
    CHECKPOINT_DIR,
    CheckpointInfo,
    TrainPosition,
    check_resumable,
    fingerprint,
    latest_complete,
    load_rng,
    mark_complete,
    prune,
    save_rng,
    tag_for,
)
from components.training.config import TrainConfig, deepspeed_config
from components.training.consolidate import gathered_state_dict, parameter_counts
from components.training.data import DialogueDataset, collate, to_device
from components.training.faults import maybe_fault
from components.training.flops import flops_per_token, peak_tflops
from components.training.mirror import CheckpointMirror
from components.training.model_setup import build_model, export_model, param_groups
from components.training.progress import Progress
from components.training.schedule import lr_schedule


def stage_losses(out: EmotionOmniOutput, stage: int) -> dict[str, torch.Tensor]:
    """The losses a stage logs, by name: the total first, then its parts."""
    if stage == 1:
        t = out.thinker
        return {
            "loss": out.loss,
            "text_loss": t.text_loss,
            "emotion_loss": t.emotion_loss,
            "user_emotion_loss": t.user_emotion_loss,
        }
    losses = {"loss": out.loss, "unit_loss": out.talker.unit_loss}
    if out.mel_loss is not None:  # a CosyVoice2 token2wav is frozen: no mel loss
        losses["mel_loss"] = out.mel_loss
    for k, loss in enumerate(out.talker.mtp_losses):
        losses[f"mtp{k + 1}_loss"] = loss
    return losses


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can skip the start of an epoch: the micro-batches a resumed run already did."""

    skip = 0  # indices of this rank's share to leave out, for the current epoch only

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return super().__len__() - self.skip


def train_worker(run_dir: Path, dataset_dir: Path, resume: bool = False) -> None:
    import deepspeed  # heavy; imported only in the training processes

    config = TrainConfig.load(run_dir / TRAIN_CONFIG_FILE)
    on_gpu = torch.cuda.is_available()
    # NCCL between GPUs (a TrainJob on a GPU node pool); gloo on CPU (local runs, CI).
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if on_gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use the tensor cores (TF32), as peak_tflops assumes
    torch.manual_seed(config.seed)  # same init everywhere; DeepSpeed also broadcasts rank 0's weights

    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    model, speech = build_model(config, run_dir)
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == "train"]
    dataset = DialogueDataset(rows, dataset_dir, config.model.thinker_config, tokenizer, speech=speech)
    sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    # An own generator: a DataLoader otherwise draws its base seed from the global RNG at every epoch's start,
    # which would make a resumed run's dropout differ from an uninterrupted one.
    loader = DataLoader(
        dataset,
        batch_size=config.micro_batch_size,
        sampler=sampler,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(config.seed),
    )
    batches_per_epoch = len(loader)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum_steps)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    optimizer = torch.optim.AdamW(param_groups(model, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(total_steps, config.warmup_ratio))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(config)
    )

    checkpoints = run_dir / CHECKPOINT_DIR
    mirror = CheckpointMirror(config.checkpoint_uri) if config.checkpoint_uri and rank == 0 else None
    position = TrainPosition()
    if resume and (info := latest_complete(checkpoints)) is not None:
        check_resumable(info, config, world)  # the launcher checked too; a TrainJob rank may be the first to look
        engine.load_checkpoint(str(checkpoints), tag=info.tag, load_module_strict=True)
        load_rng(checkpoints / info.tag, rank)
        position = info.position
    resumed_from = position.step

    progress = Progress(
        run_dir, config, total_steps, position.step, flops_per_token(engine.module), peak_tflops(config.precision)
    )

    def save_checkpoint() -> None:
        position.elapsed_s = time.time() - start
        tag = tag_for(position.step)
        engine.save_checkpoint(str(checkpoints), tag=tag, save_latest=False)
        save_rng(checkpoints / tag, rank)
        maybe_fault("checkpoint", rank, position.step)
        dist.barrier()  # every rank's part is on disk
        if rank == 0:
            info = CheckpointInfo(tag, TrainPosition(**asdict(position)), fingerprint(config), world, config.zero_stage)
            mark_complete(checkpoints, info)
            prune(checkpoints, config.keep_checkpoints)
            if mirror:
                mirror.push(checkpoints, info, config.keep_checkpoints)
        progress.checkpoint(position.step)
        dist.barrier()

    def step_checkpoint_due() -> bool:
        return bool(config.checkpoint_every_steps) and position.step % config.checkpoint_every_steps == 0

    start = time.time() - position.elapsed_s
    pending_micro_batches = 0  # gradients accumulated towards the next optimizer step
    while position.epoch < config.epochs and position.step < total_steps:
        sampler.set_epoch(position.epoch)
        sampler.skip = position.batches_in_epoch * config.micro_batch_size
        engine.train()
        for batch in loader:
            # DeepSpeed moves the model, not the inputs (and in bf16 casts the model, not the inputs).
            out = engine(**to_device(batch, engine.device, config.compute_dtype))
            engine.backward(out.loss)
            boundary = engine.is_gradient_accumulation_boundary()  # asked before step(), which advances it
            engine.step()
            position.batches_in_epoch += 1
            position.samples += len(batch["response_ids"]) * world  # the sampler gives every rank equal batches
            progress.micro_batch(batch)
            if not boundary:
                pending_micro_batches += 1
                continue
            pending_micro_batches = 0
            position.step += 1
            progress.step(
                position.step,
                position.epoch,
                stage_losses(out, config.stage),
                {group["name"]: group["lr"] for group in optimizer.param_groups},
                time.time() - start,
            )
            maybe_fault("step", rank, position.step)
            if position.step >= total_steps:
                break
            if step_checkpoint_due() and position.batches_in_epoch < batches_per_epoch:  # else: at the epoch's end
                save_checkpoint()
        if position.step < total_steps or position.batches_in_epoch >= batches_per_epoch:
            position.epoch, position.batches_in_epoch = position.epoch + 1, 0
        last = position.step >= total_steps or position.epoch >= config.epochs
        # Not between the micro-batches of one optimizer step: accumulated gradients are not in a checkpoint.
        due = position.epoch % config.checkpoint_every_epochs == 0 or step_checkpoint_due()
        if last or (due and not pending_micro_batches):
            save_checkpoint()
    progress.close()
    elapsed = time.time() - start

    epochs_run = position.epoch + (1 if position.batches_in_epoch else 0)  # begun, the last perhaps cut short
    state = gathered_state_dict(engine.module)  # every rank joins the gathers; rank 0 gets the tensors
    check = _verify_export(
        engine,
        dataset,
        config,
        run_dir,
        tokenizer,
        state,
        {"steps": position.step, "epochs": epochs_run, "zero_stage": config.zero_stage, "stage": config.stage},
    )
    if rank == 0:
        total, trainable = parameter_counts(engine.module)
        (run_dir / TRAIN_SUMMARY_FILE).write_text(
            json.dumps(
                {
                    "stage": config.stage,
                    "steps": position.step,
                    "epochs_run": epochs_run,
                    "world_size": world,
                    "train_samples": len(dataset),
                    "samples_seen": position.samples,
                    "train_seconds": round(elapsed, 2),
                    "samples_per_second": round(position.samples / max(elapsed, 1e-9), 2),
                    "parameters": total,
                    "trainable_parameters": trainable,
                    "zero_stage": config.zero_stage,
                    "precision": config.precision,
                    "resumed_from_step": resumed_from,
                    "export_check": check,
                    "lora_r": config.lora_r,
                },
                indent=2,
            )
            + "\n"
        )
    dist.barrier()


def _verify_export(
    engine, dataset, config: TrainConfig, run_dir: Path, tokenizer, state, metadata: dict
) -> dict | None:
    """Export the gathered weights (rank 0), then check on one fixed batch that the exported model's loss equals
    the engine's (all ranks run the engine: under ZeRO-3 each holds a slice). A mismatch fails the run: a model
    that does not reproduce its training would otherwise be registered and served."""
    batch = collate([dataset[i] for i in range(min(len(dataset), config.micro_batch_size))])
    engine.eval()
    torch.manual_seed(config.seed)  # the talker draws its mask and emotion condition; same draws for both
    with torch.no_grad():
        engine_loss = float(engine(**to_device(batch, engine.device, config.compute_dtype)).loss)
    if dist.get_rank() != 0:
        return None
    save_pretrained(export_model(config, run_dir, state), tokenizer, run_dir / "model", metadata=metadata)
    reloaded = EmotionOmniForConditionalGeneration.from_pretrained(run_dir / "model")
    torch.manual_seed(config.seed)
    with torch.no_grad():
        exported_loss = float(reloaded(**batch).loss)
    diff = abs(engine_loss - exported_loss)
    tolerance = (2e-2 if config.precision == "bf16" else 1e-4) * max(1.0, abs(engine_loss))
    if not diff <= tolerance:
        raise RuntimeError(
            f"the exported model does not reproduce the engine: loss {exported_loss:.6f} vs "
            f"{engine_loss:.6f} (|diff| {diff:.2e} > {tolerance:.1e}) at ZeRO-{config.zero_stage}; "
            f"the weights in {run_dir / 'model'} are not what was trained"
        )
    return {"engine_loss": round(engine_loss, 6), "exported_loss": round(exported_loss, 6), "abs_diff": diff}


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
