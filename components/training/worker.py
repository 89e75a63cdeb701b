"""The distributed training process: one copy per rank under torchrun (locally) or a Kubeflow TrainJob.

    torchrun --nproc_per_node 2 -m components.training.worker --run-dir RUN --dataset DATA

RUN must hold train_config.json and tokenizer.json (and, for stage 2, RUN/init), written by
components.training.prepare. Rank 0 logs the losses to RUN/train_log.jsonl, DeepSpeed writes ZeRO checkpoints
to RUN/checkpoints, and rank 0 exports the final weights to RUN/model (config.json + model.safetensors +
tokenizer.json). Stage 1 trains the thinker; stage 2 loads it from the stage-1 model, freezes it, and trains the
talker and the token2wav's unit -> mel model.
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
from safetensors.torch import load_file
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from components.contracts import MODEL_WEIGHTS_FILE
from components.export.pretrained import parameter_count, save_pretrained
from components.model.modeling import EmotionOmniForConditionalGeneration, EmotionOmniOutput
from components.model.tokenizer import load_tokenizer
from components.speech.dataset_units import SpeechUnits, load_speech_units
from components.synthesis import read_manifest
from components.training.config import (
    CONFIG_FILE, INIT_DIR, LOG_FILE, SUMMARY_FILE, TOKENIZER_FILE, TrainConfig, deepspeed_config,
)
from components.training.data import DialogueDataset, collate, to_device
from components.training.prepare import init_paths


def build_model(config: TrainConfig, run_dir: Path) -> tuple[EmotionOmniForConditionalGeneration, SpeechUnits | None]:
    """The model each rank trains, with pretrained parts loaded and frozen parts frozen; stage 2 also returns the
    speech units to train on."""
    model = EmotionOmniForConditionalGeneration(config.model, root=run_dir / INIT_DIR)
    if config.stage == 1:
        model.thinker.load_pretrained_parts(config.speech_encoder_path or None, config.llm_path or None)
        if config.freeze_speech_encoder:
            model.thinker.speech_encoder.requires_grad_(False)
        if config.freeze_llm:
            model.thinker.llm.requires_grad_(False)
        return model, None
    init_model, init_units = init_paths(run_dir)
    weights = load_file(str(init_model / MODEL_WEIGHTS_FILE))
    thinker = {k.removeprefix("thinker."): v for k, v in weights.items() if k.startswith("thinker.")}
    missing, unexpected = model.thinker.load_state_dict(thinker, strict=False)
    tied = {"llm.lm_head.weight"} if config.model.thinker_config.text_config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"{init_model} does not hold this thinker: missing {sorted(set(missing) - tied)[:5]}, "
                         f"unexpected {unexpected[:5]}; pass the model directory stage 1 exported")
    model.thinker.requires_grad_(False)  # the paper's stage 2: the LM (and everything before it) is frozen
    speech = load_speech_units(init_units)
    if model.trains_token2wav:  # the local token2wav speaks the units its own extractor made
        model.token2wav.extractor.load_state_dict(speech.extractor)
    return model, speech


def _param_groups(model: EmotionOmniForConditionalGeneration, config: TrainConfig) -> list[dict]:
    """Two learning rates as in the paper: the LLM's, and the rest (encoders, adapters, heads, talker)."""
    llm, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (llm if name.startswith("thinker.llm.") else rest).append(param)
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


def stage_losses(out: EmotionOmniOutput, stage: int) -> dict[str, torch.Tensor]:
    """The losses a stage logs, by name: the total first, then its parts."""
    if stage == 1:
        t = out.thinker
        return {"loss": out.loss, "text_loss": t.text_loss, "emotion_loss": t.emotion_loss,
                "user_emotion_loss": t.user_emotion_loss}
    losses = {"loss": out.loss, "unit_loss": out.talker.unit_loss}
    if out.mel_loss is not None:  # a CosyVoice2 token2wav is frozen: no mel loss
        losses["mel_loss"] = out.mel_loss
    for k, loss in enumerate(out.talker.mtp_losses):
        losses[f"mtp{k + 1}_loss"] = loss
    return losses


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
    model, speech = build_model(config, run_dir)
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == "train"]
    dataset = DialogueDataset(rows, dataset_dir, config.model.thinker_config, tokenizer, speech=speech)
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
    bar = tqdm(total=total_steps, desc=f"train stage {config.stage}", unit="step", disable=rank != 0,
               mininterval=2.0)
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
                losses = stage_losses(out, config.stage)
                means = dict(zip(losses, _mean_across_ranks([v.item() for v in losses.values()])))
                if log:
                    log.write(json.dumps({"step": step, "epoch": epoch, **means, "lr": scheduler.get_last_lr()[0],
                                          "elapsed_s": round(time.time() - start, 2)}) + "\n")
                    log.flush()
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:3]} | {"epoch": epoch})
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
                        metadata={"steps": step, "epochs": epoch + 1, "zero_stage": config.zero_stage,
                                  "stage": config.stage})
        trainable = sum(p.numel() for p in engine.module.parameters() if p.requires_grad)
        (run_dir / SUMMARY_FILE).write_text(json.dumps({
            "stage": config.stage, "steps": step, "epochs_run": epoch + 1, "world_size": world,
            "train_samples": len(dataset), "samples_seen": samples, "train_seconds": round(elapsed, 2),
            "samples_per_second": round(samples / max(elapsed, 1e-9), 2),
            "parameters": parameter_count(engine.module), "trainable_parameters": trainable,
            "zero_stage": config.zero_stage,
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
