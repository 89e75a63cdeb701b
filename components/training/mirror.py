"""CheckpointMirror: a copy of the complete checkpoints where a restarted pod finds them.

A pipeline step's run directory dies with its pod; a retry starts in an empty one. With `checkpoint_uri` set, rank 0
copies each checkpoint there once it is complete, marker last, so the mirror too holds complete checkpoints or
ignorable debris, and the launcher of the next attempt pulls the newest one back before any rank starts.

    checkpoint_uri = /mnt/shared/ckpt/<run>           a directory (the shared ReadWriteMany PVC)
    checkpoint_uri = s3://[host:port/]bucket/<run>    an S3 prefix (MinIO in clusters), credentials from the env
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from components.training.checkpoints import COMPLETE_FILE, CheckpointInfo, saving


def run_checkpoint_uri(root: str, run_id: str, stage: int) -> str:
    """Where one pipeline run's stage mirrors its checkpoints under `root`: <root>/<run id>/stage<N>, so a retried
    step finds its own run's checkpoints and no other run's."""
    return f"{root.rstrip('/')}/{run_id}/stage{stage}"


class CheckpointMirror:
    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.s3 = uri.startswith("s3://")

    def push(self, checkpoint_dir: Path, info: CheckpointInfo, keep: int) -> None:
        """Copy checkpoint `info.tag` (marker last), then drop the mirror's checkpoints beyond the newest `keep`.

        A copy cut short (a full volume, the object store gone) has no marker, so the mirror's newest complete
        checkpoint is still the one before; a full volume raises CheckpointDiskFullError saying so."""
        source = Path(checkpoint_dir) / info.tag
        if self.s3:
            from components.storage import upload_directory

            upload_directory(source, f"{self.uri}/{info.tag}", last=(COMPLETE_FILE,))
        else:
            target = Path(self.uri) / info.tag
            shutil.rmtree(target, ignore_errors=True)
            try:
                with saving(Path(self.uri), info.tag):
                    shutil.copytree(source, target, ignore=shutil.ignore_patterns(COMPLETE_FILE))
                    # Renamed into place: a kill mid-copy must not leave a truncated marker that looks complete.
                    shutil.copy2(source / COMPLETE_FILE, target / f".{COMPLETE_FILE}.tmp")
                    os.replace(target / f".{COMPLETE_FILE}.tmp", target / COMPLETE_FILE)
            except OSError:
                shutil.rmtree(target, ignore_errors=True)  # the next push starts it over; give its space back now
                raise
        for tag in self.tags()[:-keep]:
            self._delete(tag)

    def pull_latest(self, checkpoint_dir: Path) -> CheckpointInfo | None:
        """Copy the mirror's newest complete checkpoint into `checkpoint_dir` unless one as new is there already."""
        from components.training.checkpoints import latest_complete

        tags = self.tags()
        if not tags:
            return None
        newest, local = tags[-1], latest_complete(checkpoint_dir)
        if local is not None and local.tag >= newest:
            return local
        target = Path(checkpoint_dir) / newest
        shutil.rmtree(target, ignore_errors=True)
        if self.s3:
            from components.storage import download_directory

            download_directory(f"{self.uri}/{newest}", target)
        else:
            shutil.copytree(Path(self.uri) / newest, target)
        return CheckpointInfo.read(target / COMPLETE_FILE)

    def tags(self) -> list[str]:
        """Tags with a completeness marker, oldest first (tags sort by step: step00000012)."""
        if self.s3:
            from components.storage import list_objects

            names = list_objects(self.uri)
            return sorted({n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/" + COMPLETE_FILE)})
        root = Path(self.uri)
        return sorted(p.parent.name for p in root.glob(f"*/{COMPLETE_FILE}")) if root.is_dir() else []

    def _delete(self, tag: str) -> None:
        """Marker first: a deletion cut short leaves debris, never a checkpoint that looks complete."""
        if self.s3:
            from components.storage import delete_prefix

            delete_prefix(f"{self.uri}/{tag}", first=(COMPLETE_FILE,))
        else:
            (Path(self.uri) / tag / COMPLETE_FILE).unlink(missing_ok=True)
            shutil.rmtree(Path(self.uri) / tag, ignore_errors=True)
