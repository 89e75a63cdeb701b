"""The object store stopped mid-upload (SIGKILL, as a crashed or evicted server does): the upload fails naming the
endpoint and how far it got, nothing is left that a reader would take as complete, and once the server is back the
same call uploads everything, byte for byte.

The server is a real SeaweedFS of this module's own (tests/faults/conftest.py), killed between two objects of an
upload. S3 shows an object only once its PUT completed, so a directory upload cut short holds whole objects, and
no completeness marker: the checkpoint mirror's complete.json and the Triton repository's config.pbtxt go last.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from minio import Minio

from components.storage import StorageError, download_directory, list_objects
from components.training import TrainConfig
from components.training.checkpoints import (
    COMPLETE_FILE,
    CheckpointInfo,
    TrainPosition,
    fingerprint,
    mark_complete,
    tag_for,
)
from components.training.mirror import CheckpointMirror
from serving.repository import CONFIG_FILE, MODELS, build_model_repository, publish_model_repository

pytestmark = pytest.mark.faults


def _kill_after(monkeypatch, server, uploads: int) -> None:
    """SIGKILL `server` once `uploads` objects went up, so the next one finds it gone."""
    original, done = Minio.fput_object, []

    def fput_object(self, *args, **kwargs):
        if len(done) == uploads:
            server.stop(kill=True)
        done.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Minio, "fput_object", fput_object)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _checkpoint(checkpoint_dir: Path, step: int) -> CheckpointInfo:
    """A complete checkpoint of a rank's three files (states, optimizer, RNG) plus the marker."""
    info = CheckpointInfo(tag_for(step), TrainPosition(step=step), fingerprint(TrainConfig()), 1, 2)
    (checkpoint_dir / info.tag).mkdir(parents=True)
    for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", "rng_rank0.pt"):
        (checkpoint_dir / info.tag / name).write_bytes(os.urandom(200_000))
    mark_complete(checkpoint_dir, info)
    return info


def test_a_mirror_push_cut_short_leaves_the_previous_checkpoint_and_a_retry_completes(own_s3_env, tmp_path):
    server, local = own_s3_env, tmp_path / "run" / "checkpoints"
    mirror = CheckpointMirror(f"s3://{server.endpoint}/models/ckpt/{tmp_path.name}")
    first, second = _checkpoint(local, 1), _checkpoint(local, 2)
    mirror.push(local, first, keep=2)

    with pytest.MonkeyPatch.context() as patch:
        _kill_after(patch, server, uploads=2)
        with pytest.raises(StorageError) as error:
            mirror.push(local, second, keep=2)
    assert f"cannot reach the object store at {server.endpoint}" in str(error.value)
    assert "(2 of 4 files were uploaded before it failed)" in str(error.value)

    server.start()
    uploaded = [name for name in list_objects(mirror.uri) if name.startswith(second.tag)]
    assert len(uploaded) == 2 and f"{second.tag}/{COMPLETE_FILE}" not in uploaded  # whole objects, no marker
    assert mirror.tags() == [first.tag]  # so a restarted pod resumes from the one before
    assert mirror.pull_latest(tmp_path / "pod-2" / "checkpoints").tag == first.tag
    assert _files(tmp_path / "pod-2" / "checkpoints" / first.tag) == _files(local / first.tag)

    mirror.push(local, second, keep=2)  # the retry, once the server is back

    assert mirror.tags() == [first.tag, second.tag]
    assert mirror.pull_latest(tmp_path / "pod-3" / "checkpoints").tag == second.tag
    assert _files(tmp_path / "pod-3" / "checkpoints" / second.tag) == _files(local / second.tag)


def test_a_publish_cut_short_leaves_nothing_triton_would_load_and_a_retry_completes(
    own_s3_env, tiny_model_dir, tmp_path
):
    server = own_s3_env
    repo = build_model_repository(tiny_model_dir, tmp_path / "repository", version=3)
    base = f"s3://{server.endpoint}/models/triton/{tmp_path.name}"

    with pytest.MonkeyPatch.context() as patch:
        _kill_after(patch, server, uploads=3)
        with pytest.raises(StorageError, match=f"upload to s3://http://{server.endpoint}/models/triton/.* failed: "):
            publish_model_repository(repo, base, version=3)

    server.start()
    uploaded = list_objects(f"{base}/3")
    assert len(uploaded) == 3 and not any(name.endswith(CONFIG_FILE) for name in uploaded)  # no model is loadable

    published = publish_model_repository(repo, base, version=3)

    names = list_objects(published)
    assert {f"{model}/{CONFIG_FILE}" for model in MODELS} <= set(names)
    assert _files(download_directory(published, tmp_path / "downloaded")) == _files(repo)
