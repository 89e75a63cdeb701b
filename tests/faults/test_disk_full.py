"""A full disk while checkpointing: the save fails saying the disk is full and where, and the checkpoint before it
stays complete and loadable, the one --resume continues from.

Real file systems of a few MiB (tests/faults/conftest.py), filled by the same calls a rank makes: torch.save (what
DeepSpeed's save_checkpoint writes with), save_rng, mark_complete, and the mirror's copy to a shared volume.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from components.training import TrainConfig
from components.training.checkpoints import (
    COMPLETE_FILE,
    CheckpointDiskFullError,
    CheckpointInfo,
    TrainPosition,
    disk_full_report,
    fingerprint,
    latest_complete,
    load_rng,
    mark_complete,
    save_rng,
    saving,
    tag_for,
)
from components.training.mirror import CheckpointMirror

pytestmark = pytest.mark.faults

STATES = "mp_rank_00_model_states.pt"  # the file name DeepSpeed gives rank 0's model states
MIB = 1 << 20


def _save(checkpoint_dir: Path, step: int, size: int, before_marker=lambda: None) -> CheckpointInfo:
    """One rank's checkpoint save at `size` bytes of weights, guarded as the training loop guards it."""
    info = CheckpointInfo(tag_for(step), TrainPosition(step=step), fingerprint(TrainConfig()), 1, 2)
    tag_dir = checkpoint_dir / info.tag
    with saving(checkpoint_dir, info.tag):
        tag_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"weights": torch.full((size // 4,), float(step))}, tag_dir / STATES)
        save_rng(tag_dir, 0)
        before_marker()
        mark_complete(checkpoint_dir, info)
    return info


def _assert_intact(checkpoint_dir: Path, info: CheckpointInfo) -> None:
    """`info` is still the newest complete checkpoint, and its weights and RNG load as saved."""
    assert latest_complete(checkpoint_dir).tag == info.tag
    weights = torch.load(checkpoint_dir / info.tag / STATES)["weights"]
    assert bool((weights == float(info.position.step)).all())
    load_rng(checkpoint_dir / info.tag, 0)


def _fill(directory: Path) -> None:
    """Write until the file system refuses another byte (smaller writes fill what a larger one could not)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
        os.fsync(fd)
    finally:
        os.close(fd)


def test_weights_that_do_not_fit_keep_the_previous_checkpoint_and_say_the_disk_is_full(tmp_path, small_disk):
    checkpoints = small_disk(tmp_path / "checkpoints", 2 * MIB)
    first = _save(checkpoints, 1, int(1.2 * MIB))

    with pytest.raises(CheckpointDiskFullError) as error:
        _save(checkpoints, 2, int(1.2 * MIB))  # torch's writer fails part-way: "file write failed", no errno

    message = str(error.value)
    assert f"could not write checkpoint {tag_for(2)}: the disk holding {checkpoints} is full" in message
    assert f"{tag_for(1)} (step 1), is intact: --resume continues from it" in message
    assert isinstance(error.value.__cause__, RuntimeError)  # torch's own error stays attached
    assert not (checkpoints / tag_for(2) / COMPLETE_FILE).exists()
    _assert_intact(checkpoints, first)
    # What the rank's CheckpointDiskFullError says (checkpoints.saving), where torch says only "file write failed".
    assert "is full" in disk_full_report(checkpoints)


def test_a_marker_that_does_not_fit_leaves_the_checkpoint_incomplete_and_no_debris(tmp_path, small_disk):
    checkpoints = small_disk(tmp_path / "checkpoints", 1 * MIB)
    first = _save(checkpoints, 1, 64 * 1024)

    with pytest.raises(CheckpointDiskFullError, match=f"the disk holding {checkpoints} is full"):
        _save(checkpoints, 2, 64 * 1024, before_marker=lambda: _fill(checkpoints))

    assert sorted(p.name for p in (checkpoints / tag_for(2)).iterdir()) == [STATES, "rng_rank0.pt"]  # no marker
    _assert_intact(checkpoints, first)


def test_a_full_mirror_volume_keeps_the_mirrors_previous_checkpoint(tmp_path, small_disk):
    local = tmp_path / "run" / "checkpoints"
    mirror_dir = small_disk(tmp_path / "pvc", 2 * MIB)
    mirror = CheckpointMirror(str(mirror_dir))
    first = _save(local, 1, int(1.2 * MIB))
    mirror.push(local, first, keep=2)
    second = _save(local, 2, int(1.2 * MIB))  # the run's own disk has room: only the mirror is full

    with pytest.raises(CheckpointDiskFullError, match=f"could not write checkpoint {second.tag}: the disk holding"):
        mirror.push(local, second, keep=2)

    assert mirror.tags() == [first.tag]
    assert not (mirror_dir / second.tag).exists()  # the partial copy gave its space back
    restarted = tmp_path / "retry" / "checkpoints"
    assert mirror.pull_latest(restarted).tag == first.tag
    _assert_intact(restarted, first)


def test_a_failure_with_room_on_the_disk_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(KeyError):
        with saving(tmp_path, tag_for(1)):
            raise KeyError("a bug, not the disk")
    assert disk_full_report(tmp_path) is None
