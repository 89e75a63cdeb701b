"""The training loop of one rank: optimizer steps, the losses it logs, and the checkpoints it writes.

Checkpoints are written at an epoch's end every `checkpoint_every_epochs` epochs (and at the run's end), and every
`checkpoint_every_steps` optimizer steps inside an epoch; never between the micro-batches of one optimizer step,
whose accumulated gradients a checkpoint does not hold. See checkpoints.py for what makes one complete.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import torch
import torch.distributed as dist

from components.model.modeling import EmotionOmniOutput
from components.training.checkpoints import (
    CheckpointInfo,
    TrainPosition,
    fingerprint,
    mark_complete,
    prune,
    save_rng,
    saving,
    tag_for,
)
from components.training.data import to_device
from components.training.faults import maybe_fault
from components.training.flops import flops_per_token, peak_tflops
from components.training.mirror import CheckpointMirror
from components.training.progress import Progress
from components.training.session import TrainSession


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


class TrainLoop:
    """Trains `session` from its position to the end of the run (`run()`), checkpointing on the way."""

    def __init__(self, session: TrainSession):
        self.session, self.config, self.position = session, session.config, session.position
        uri = self.config.checkpoint_uri
        self.mirror = CheckpointMirror(uri) if uri and session.rank == 0 else None
        self.progress = Progress(
            session.run_dir,
            self.config,
            session.total_steps,
            self.position.step,
            flops_per_token(session.engine.module),
            peak_tflops(self.config.precision),
        )
        self.start = time.time() - self.position.elapsed_s  # a resumed run's clock goes on from the checkpoint's
        self.pending_micro_batches = 0  # gradients accumulated towards the next optimizer step

    def run(self) -> float:
        """Train every remaining epoch (or up to `total_steps`); return the run's training seconds."""
        config, position, total_steps = self.config, self.position, self.session.total_steps
        while position.epoch < config.epochs and position.step < total_steps:
            self._epoch()
            if position.step < total_steps or position.batches_in_epoch >= self.session.batches_per_epoch:
                position.epoch, position.batches_in_epoch = position.epoch + 1, 0
            last = position.step >= total_steps or position.epoch >= config.epochs
            # Not between the micro-batches of one optimizer step: accumulated gradients are not in a checkpoint.
            due = position.epoch % config.checkpoint_every_epochs == 0 or self._step_checkpoint_due()
            if last or (due and not self.pending_micro_batches):
                self._save_checkpoint()
        self.progress.close()
        return time.time() - self.start

    def _epoch(self) -> None:
        """The rest of the current epoch: from the micro-batch a resumed run stopped at, to its end or the last step."""
        session, config, position = self.session, self.config, self.position
        engine = session.engine
        session.sampler.set_epoch(position.epoch)
        session.sampler.skip = position.batches_in_epoch * config.micro_batch_size
        engine.train()
        for batch in session.loader:
            # DeepSpeed moves the model, not the inputs (and in bf16 casts the model, not the inputs).
            out = engine(**to_device(batch, engine.device, config.compute_dtype))
            engine.backward(out.loss)
            boundary = engine.is_gradient_accumulation_boundary()  # asked before step(), which advances it
            engine.step()
            position.batches_in_epoch += 1
            position.samples += len(batch["response_ids"]) * session.world  # every rank gets equal batches
            self.progress.micro_batch(batch)
            if not boundary:
                self.pending_micro_batches += 1
                continue
            self.pending_micro_batches = 0
            position.step += 1
            self.progress.step(
                position.step,
                position.epoch,
                stage_losses(out, config.stage),
                {group["name"]: group["lr"] for group in session.optimizer.param_groups},
                time.time() - self.start,
            )
            maybe_fault("step", session.rank, position.step)
            if position.step >= session.total_steps:
                return
            if self._step_checkpoint_due() and position.batches_in_epoch < session.batches_per_epoch:
                self._save_checkpoint()  # at the epoch's last batch `run` saves instead, after the epoch ends

    def _step_checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every_steps
        return bool(every) and self.position.step % every == 0

    def _save_checkpoint(self) -> None:
        """Every rank writes its part; once all have, rank 0 marks the checkpoint complete, prunes and mirrors."""
        session, config, position = self.session, self.config, self.position
        position.elapsed_s = time.time() - self.start
        tag = tag_for(position.step)
        # A full disk fails the save naming the directory and the checkpoint a resume loads (still complete).
        with saving(session.checkpoints, tag):
            session.engine.save_checkpoint(str(session.checkpoints), tag=tag, save_latest=False)
            save_rng(session.checkpoints / tag, session.rank)
        maybe_fault("checkpoint", session.rank, position.step)
        dist.barrier()  # every rank's part is on disk
        if session.rank == 0:
            info = CheckpointInfo(
                tag, TrainPosition(**asdict(position)), fingerprint(config), session.world, config.zero_stage
            )
            with saving(session.checkpoints, tag):
                mark_complete(session.checkpoints, info)
            prune(session.checkpoints, config.keep_checkpoints)
            if self.mirror:
                self.mirror.push(session.checkpoints, info, config.keep_checkpoints)
        self.progress.checkpoint(position.step)
        dist.barrier()
