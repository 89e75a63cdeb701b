"""Resumable training checkpoints: complete or ignored.

A checkpoint is DeepSpeed's ZeRO checkpoint (weights, optimizer state, LR schedule: every rank writes its part)
plus each rank's RNG state, in RUN/checkpoints/step00000012/. Only when every rank has written its part does rank 0
add `complete.json`: the position in the data (epoch, micro-batches of it done, optimizer steps, samples) and the
fingerprint of what was trained. A directory without it (a kill cut the save short) is never loaded.

Resuming loads the newest complete checkpoint, restores the RNG and skips the data already seen, so the run goes
on as if it had not stopped (see session.py and loop.py; the test compares the weights with an uninterrupted run's).

A save that fails for want of disk space (`saving`) leaves the previous complete checkpoint as it was: nothing
deletes an older checkpoint before a newer one is complete (`prune` runs after `mark_complete`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.errors import ConfigError, InputNotFoundError, OmniError

CHECKPOINT_DIR = "checkpoints"  # inside the run directory
COMPLETE_FILE = "complete.json"  # written last, by rank 0, after every rank saved
_TAG_PREFIX = "step"
# With no complete checkpoint to size the next one by, a failed save counts as a full disk below this much free.
_MIN_FREE_BYTES = 1 << 20
_MIB = float(1 << 20)


class CheckpointDiskFullError(OmniError, OSError):
    """A checkpoint could not be written for want of disk space; the message says where and what a resume loads."""


@dataclass
class TrainPosition:
    """Where a run stands: enough to go on from here with the same data order."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch under way (== epochs done when batches_in_epoch is 0)
    batches_in_epoch: int = 0  # micro-batches of that epoch this rank has trained on
    samples: int = 0  # samples seen by all ranks together
    elapsed_s: float = 0.0  # training seconds before this point (excludes start-up)


@dataclass
class CheckpointInfo:
    tag: str
    position: TrainPosition
    fingerprint: str  # of the model config and the parameters that shape the checkpoint's tensors
    world_size: int
    zero_stage: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> CheckpointInfo:
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "position": TrainPosition(**data["position"])})


def tag_for(step: int) -> str:
    return f"{_TAG_PREFIX}{step:08d}"


def fingerprint(config) -> str:
    """What a checkpoint's tensors depend on: the model config, the stage and the LoRA adapters (TrainConfig)."""
    shape = {
        "model": config.model.to_dict(),
        "stage": config.stage,
        "lora": config.lora_settings() if config.lora_r else None,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def mark_complete(checkpoint_dir: Path, info: CheckpointInfo) -> Path:
    """Rank 0, after every rank saved: the atomic write that makes `info.tag` loadable."""
    target = Path(checkpoint_dir) / info.tag / COMPLETE_FILE
    tmp = target.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
    except OSError:
        tmp.unlink(missing_ok=True)  # a marker cut short must not linger (nor fill the disk further)
        raise
    os.replace(tmp, target)
    return target


def complete_checkpoints(checkpoint_dir: Path) -> list[CheckpointInfo]:
    """The complete checkpoints under `checkpoint_dir`, oldest first."""
    found = []
    for marker in Path(checkpoint_dir).glob(f"{_TAG_PREFIX}*/{COMPLETE_FILE}"):
        found.append(CheckpointInfo.read(marker))
    return sorted(found, key=lambda info: info.position.step)


def latest_complete(checkpoint_dir: Path) -> CheckpointInfo | None:
    found = complete_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def check_resumable(info: CheckpointInfo, config, world_size: int) -> None:
    """Raise ConfigError naming the difference when `info` was not written by a run of this config and size."""
    problems = []
    if info.fingerprint != fingerprint(config):
        problems.append("it was written for another model config (architecture, stage or LoRA settings differ)")
    if info.world_size != world_size:
        problems.append(f"it has {info.world_size} ranks' ZeRO partitions, this run {world_size}")
    if info.zero_stage != config.zero_stage:
        problems.append(f"it is a ZeRO-{info.zero_stage} checkpoint, this run uses ZeRO-{config.zero_stage}")
    if problems:
        raise ConfigError(
            f"cannot resume from checkpoint {info.tag}: {'; '.join(problems)}. Resume with the "
            "config it was written with, or start over without --resume in a new run directory"
        )


def prune(checkpoint_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete checkpoints, and incomplete ones older than the newest complete
    one (a kill's leftovers); return the deleted tags. Newer incomplete ones may be another rank's save under way."""
    complete = complete_checkpoints(checkpoint_dir)
    if not complete:
        return []
    kept = {info.tag for info in complete[-keep:]}
    newest = complete[-1].position.step
    deleted = []
    for path in sorted(Path(checkpoint_dir).glob(f"{_TAG_PREFIX}*")):
        step = int(path.name[len(_TAG_PREFIX) :]) if path.name[len(_TAG_PREFIX) :].isdigit() else None
        if step is None or path.name in kept or (not (path / COMPLETE_FILE).exists() and step > newest):
            continue
        (path / COMPLETE_FILE).unlink(missing_ok=True)  # first: a deletion cut short leaves ignorable debris
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path.name)
    return deleted


# --- a full disk ---


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def disk_full_report(checkpoint_dir: Path, certain: bool = False) -> str | None:
    """Why a save in `checkpoint_dir` failed when the disk is the reason, else None.

    torch's writer reports a full disk only as "file write failed" (no errno), so the test is the free space: less
    than the newest complete checkpoint takes, which the next one needs too. `certain`: the caller saw ENOSPC itself.
    """
    checkpoint_dir = Path(checkpoint_dir)
    newest = latest_complete(checkpoint_dir)
    needed = max(_MIN_FREE_BYTES, _size(checkpoint_dir / newest.tag) if newest else 0)
    usage = shutil.disk_usage(checkpoint_dir)
    if usage.free >= needed and not certain:
        return None
    kept = (
        f"The newest complete checkpoint, {newest.tag} (step {newest.position.step}), is intact: --resume continues "
        "from it"
        if newest
        else "No checkpoint was complete yet"
    )
    return (
        f"the disk holding {checkpoint_dir} is full ({usage.free / _MIB:.1f} MiB free of {usage.total / _MIB:.1f} "
        f"MiB; a checkpoint takes about {needed / _MIB:.1f} MiB). {kept}. Free space there (older runs, or a smaller "
        "keep_checkpoints) or give the run a larger volume, then run again with --resume"
    )


@contextmanager
def saving(checkpoint_dir: Path, tag: str) -> Iterator[None]:
    """Around writing checkpoint `tag` (DeepSpeed's save, the RNG, the marker): a failure for want of disk space
    becomes a CheckpointDiskFullError naming the directory, and the checkpoint a resume loads; other errors pass."""
    try:
        yield
    except Exception as error:
        certain = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
        report = disk_full_report(checkpoint_dir, certain)
        if report is None:
            raise
        raise CheckpointDiskFullError(f"could not write checkpoint {tag}: {report}") from error


# --- RNG: dropout, the talker's streaming-mask and reference-emotion draws ---


def _rng_file(tag_dir: Path, rank: int) -> Path:
    return Path(tag_dir) / f"rng_rank{rank}.pt"


def save_rng(tag_dir: Path, rank: int) -> None:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    torch.save(state, _rng_file(tag_dir, rank))


def load_rng(tag_dir: Path, rank: int) -> None:
    path = _rng_file(tag_dir, rank)
    if not path.is_file():
        raise InputNotFoundError(
            f"{path} is missing from a checkpoint marked complete: delete {Path(tag_dir)} "
            "to resume from the one before it"
        )
    state = torch.load(path, weights_only=False)  # our own file: Python and NumPy states are tuples
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
