"""The end of a training run: gather the weights, export RUN/model, prove the export, write the run's summary.

All ranks gather the weights (under ZeRO-3 each holds a slice; see consolidate.py) and compute the engine's loss on
one fixed batch; rank 0 exports the model (config.json + model.safetensors + tokenizer.json), reloads it, checks
that it reproduces that loss and writes RUN/train_summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist

from components.contracts import TRAIN_MODEL_DIR, TRAIN_SUMMARY_FILE
from components.export.pretrained import save_pretrained
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.training.consolidate import gathered_state_dict, parameter_counts
from components.training.data import collate, to_device
from components.training.model_setup import export_model
from components.training.session import TrainSession


def export_run(session: TrainSession, elapsed_s: float) -> None:
    """Export and check the trained model, then write the summary (rank 0). Every rank must call it."""
    position, config = session.position, session.config
    epochs_run = position.epoch + (1 if position.batches_in_epoch else 0)  # begun, the last perhaps cut short
    state = gathered_state_dict(session.engine.module)  # every rank joins the gathers; rank 0 gets the tensors
    metadata = {"steps": position.step, "epochs": epochs_run, "zero_stage": config.zero_stage, "stage": config.stage}
    batch = _check_batch(session)
    engine_loss = _engine_loss(session, batch)
    if session.rank == 0:
        save_pretrained(
            export_model(config, session.run_dir, state),
            session.tokenizer,
            session.run_dir / TRAIN_MODEL_DIR,
            metadata=metadata,
        )
        check = _check_export(session, batch, engine_loss)
        _write_summary(session, elapsed_s, epochs_run, check)
    dist.barrier()


def _check_batch(session: TrainSession) -> dict:
    """The first micro-batch of the training data, unshuffled: the same on every rank and for the reload."""
    dataset, size = session.dataset, session.config.micro_batch_size
    return collate([dataset[i] for i in range(min(len(dataset), size))])


def _engine_loss(session: TrainSession, batch: dict) -> float:
    """The engine's loss on `batch`; all ranks run it (under ZeRO-3 each holds a slice of the weights)."""
    engine, config = session.engine, session.config
    engine.eval()
    torch.manual_seed(config.seed)  # the talker draws its mask and emotion condition; same draws for both
    with torch.no_grad():
        return float(engine(**to_device(batch, engine.device, config.compute_dtype)).loss)


def _check_export(session: TrainSession, batch: dict, engine_loss: float) -> dict:
    """Reload the export and compare its loss on `batch` with the engine's. A mismatch fails the run: a
    model that does not reproduce its training would otherwise be registered and served."""
    config, model_dir = session.config, session.run_dir / TRAIN_MODEL_DIR
    reloaded = EmotionOmniForConditionalGeneration.from_pretrained(model_dir)
    torch.manual_seed(config.seed)
    with torch.no_grad():
        exported_loss = float(reloaded(**batch).loss)
    diff = abs(engine_loss - exported_loss)
    tolerance = (2e-2 if config.precision == "bf16" else 1e-4) * max(1.0, abs(engine_loss))
    if not diff <= tolerance:
        raise RuntimeError(
            f"the exported model does not reproduce the engine: loss {exported_loss:.6f} vs "
            f"{engine_loss:.6f} (|diff| {diff:.2e} > {tolerance:.1e}) at ZeRO-{config.zero_stage}; "
            f"the weights in {model_dir} are not what was trained"
        )
    return {"engine_loss": round(engine_loss, 6), "exported_loss": round(exported_loss, 6), "abs_diff": diff}


def _write_summary(session: TrainSession, elapsed_s: float, epochs_run: int, check: dict) -> Path:
    """RUN/train_summary.json: what the launcher's TrainResult and MLflow report of the run."""
    config, position = session.config, session.position
    total, trainable = parameter_counts(session.engine.module)
    summary = {
        "stage": config.stage,
        "steps": position.step,
        "epochs_run": epochs_run,
        "world_size": session.world,
        "train_samples": len(session.dataset),
        "samples_seen": position.samples,
        "train_seconds": round(elapsed_s, 2),
        "samples_per_second": round(position.samples / max(elapsed_s, 1e-9), 2),
        "parameters": total,
        "trainable_parameters": trainable,
        "zero_stage": config.zero_stage,
        "precision": config.precision,
        "resumed_from_step": session.resumed_from,
        "export_check": check,
        "lora_r": config.lora_r,
    }
    path = session.run_dir / TRAIN_SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
