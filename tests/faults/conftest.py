"""What the fault tests break: an S3 server of their own that they stop and start, and small file systems to fill."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SeaweedFS


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory) -> Iterator[SeaweedFS]:
    """A SeaweedFS server for one module alone: its tests stop it mid-upload, which the session's server must not."""
    server = SeaweedFS(tmp_path_factory.mktemp("own-seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture()
def own_s3_env(own_s3, monkeypatch) -> SeaweedFS:
    """own_s3 with its key pair in the environment, as a Secret provides it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", own_s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", own_s3.secret)
    return own_s3


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture()
def small_disk(tmp_path) -> Iterator[Callable[[Path, int], Path]]:
    """small_disk(path, size_bytes) mounts a file system of that size at `path`: a tmpfs, or where tmpfs mounts are
    not allowed an ext4 loop file; unmounted after the test. Skips, saying why, where neither can be mounted."""
    mounted: list[Path] = []

    def mount(path: Path, size: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        tmpfs = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        if tmpfs.returncode != 0:
            image = tmp_path / f"{path.name}.ext4"
            with open(image, "wb") as f:
                f.truncate(size + (64 << 10))  # with no journal and no reserved blocks, ext4's metadata is ~50 KiB
            if shutil.which("mkfs.ext4") is None:
                pytest.skip(f"cannot mount a size-limited file system: tmpfs: {tmpfs.stderr.strip()}; no mkfs.ext4")
            loop = _run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(image))
            if loop.returncode == 0:
                loop = _run("mount", "-o", "loop", str(image), str(path))
            if loop.returncode != 0:
                pytest.skip(
                    "cannot mount a size-limited file system here (needs root or CAP_SYS_ADMIN): "
                    f"tmpfs: {tmpfs.stderr.strip()}; loop file: {loop.stderr.strip()}"
                )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        _run("umount", "-l", str(path))
