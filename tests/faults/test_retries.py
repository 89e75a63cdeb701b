"""A pipeline step retried after it completed (its pod lost before KFP saw it finish) does no harm.

- export-triton: the repository built and published again is the same S3 objects (keys, ETags, bytes);
- synthesize-part: run again on its finished output it speaks nothing and returns the same rows, so the merged
  dataset holds each dialogue once.

register-model's retry (one model version per lineage ID) is proved against the MLflow server in
tests/components/registry/test_mlflow_production.py (README: Reliability).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from minio import Minio

from components.storage import download_directory, parse_s3_uri
from components.synthesis import SynthesisConfig, merge_parts, read_manifest, synthesize_part
from serving.repository import build_model_repository, publish_model_repository

pytestmark = pytest.mark.faults

LINEAGE = {"lineage_id": "kfp-run-7", "model_name": "emotion-omni", "model_version": "4", "mlflow_run_id": "abc"}


def _objects(uri: str) -> dict[str, str]:
    """{key: ETag} under `uri`, as the object store lists them."""
    location = parse_s3_uri(uri)
    client = Minio(
        location.endpoint,
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        secure=False,
    )
    return {o.object_name: o.etag for o in client.list_objects(location.bucket, location.prefix + "/", recursive=True)}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_retried_export_publishes_the_same_objects(s3_env, tiny_model_dir, tmp_path):
    base = f"s3://{s3_env}/models/retried-export/{tmp_path.name}"

    def export(attempt: str) -> str:  # what the export-triton step does after downloading the registered model
        repo = build_model_repository(
            tiny_model_dir, tmp_path / attempt, version=4, lineage=LINEAGE, model_card="# emotion-omni v4\n"
        )
        return publish_model_repository(repo, base, version=4, instance_kind="gpu")

    first_uri = export("attempt-1")
    first = _objects(first_uri)
    second_uri = export("attempt-2")  # a fresh pod: a new local repository, the same published prefix

    assert second_uri == first_uri
    assert _objects(second_uri) == first  # no key more or less, every ETag (an MD5 of the bytes) the same
    assert _files(download_directory(second_uri, tmp_path / "served")).keys() == _files(tmp_path / "attempt-1").keys()


def test_a_retried_synthesis_part_speaks_nothing_again_and_the_dataset_has_each_dialogue_once(tmp_path):
    config = SynthesisConfig(n=18, seed=5, channels=None, filters=None, shard_size=6, workers=1)  # 3 shards
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    first = [synthesize_part(config, parts[i], part=i, parts=2, progress=False) for i in range(2)]
    wavs = {i: _files(parts[i] / "wavs") for i in range(2)}

    retried = synthesize_part(config, parts[0], part=0, parts=2, progress=False)

    assert retried.resumed_shards == retried.shards == 2  # shards 0 and 2, both finished: nothing spoken again
    assert retried.rows == first[0].rows
    assert _files(parts[0] / "wavs") == wavs[0]
    merged = merge_parts(config, parts, tmp_path / "data", progress=False)
    ids = [row["id"] for row in read_manifest(merged.out_dir)]
    assert len(ids) == len(set(ids)) == config.n
    assert sorted(ids) == sorted(row["id"] for run in first for row in run.rows)
