"""A training rank's setup: process group, config, data, model, DeepSpeed engine and, with --resume, the position.

`start_session` builds everything one rank of worker.py trains with into a `TrainSession`; the loop (loop.py) moves
its position forward and the export (export_run.py) reads what it trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from components.contracts import TOKENIZER_FILE, TRAIN_CONFIG_FILE
from components.model.tokenizer import load_tokenizer
from components.training.checkpoints import CHECKPOINT_DIR, TrainPosition, check_resumable, latest_complete, load_rng
from components.training.config import TrainConfig, deepspeed_config
from components.training.data import DialogueDataset, collate, train_split
from components.training.model_setup import build_model, param_groups
from components.training.ranks import join_process_group
from components.training.schedule import lr_schedule


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can skip the start of an epoch: the micro-batches a resumed run already did."""

    skip = 0  # indices of this rank's share to leave out, for the current epoch only

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return super().__len__() - self.skip


@dataclass
class TrainSession:
    """What one rank trains with. `position` is where the run stands; the loop advances it in place."""

    run_dir: Path
    config: TrainConfig
    rank: int
    world: int
    tokenizer: object  # tokenizers.Tokenizer
    dataset: DialogueDataset
    sampler: ResumableSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    engine: object  # deepspeed.DeepSpeedEngine
    batches_per_epoch: int
    total_steps: int
    position: TrainPosition
    resumed_from: int  # the optimizer step this process started at (0: a fresh run)

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR


def start_session(run_dir: Path, dataset_dir: Path, resume: bool = False) -> TrainSession:
    """Join the process group and build this rank's data, model and engine; with `resume`, load the newest
    complete checkpoint (weights, optimizer, LR schedule, RNG) and the position it was written at."""
    import deepspeed  # heavy; imported only in the training processes

    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / TRAIN_CONFIG_FILE)
    joined = join_process_group(deepspeed=True)
    torch.manual_seed(config.seed)  # same init everywhere; DeepSpeed also broadcasts rank 0's weights

    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    model, speech = build_model(config, run_dir)
    dataset = train_split(dataset_dir, config.model.thinker_config, tokenizer, speech)
    sampler = ResumableSampler(dataset, num_replicas=joined.world, rank=joined.rank, shuffle=True, seed=config.seed)
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
    total_steps = _total_steps(config, batches_per_epoch)

    optimizer = torch.optim.AdamW(param_groups(model, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(total_steps, config.warmup_ratio))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(config)
    )
    session = TrainSession(
        run_dir=run_dir,
        config=config,
        rank=joined.rank,
        world=joined.world,
        tokenizer=tokenizer,
        dataset=dataset,
        sampler=sampler,
        loader=loader,
        optimizer=optimizer,
        engine=engine,
        batches_per_epoch=batches_per_epoch,
        total_steps=total_steps,
        position=TrainPosition(),
        resumed_from=0,
    )
    if resume:
        _resume(session)
    return session


def _total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run: every epoch's, or `max_steps` when that is fewer."""
    total = math.ceil(batches_per_epoch / config.grad_accum_steps) * config.epochs
    return min(total, config.max_steps) if config.max_steps else total


def _resume(session: TrainSession) -> None:
    """Load the newest complete checkpoint into the engine and this rank's RNG; none yet: start from step 0."""
    info = latest_complete(session.checkpoints)
    if info is None:
        return
    # The launcher checked too; a TrainJob rank may be the first to look.
    check_resumable(info, session.config, session.world)
    session.engine.load_checkpoint(str(session.checkpoints), tag=info.tag, load_module_strict=True)
    load_rng(session.checkpoints / info.tag, session.rank)
    session.position, session.resumed_from = info.position, info.position.step
