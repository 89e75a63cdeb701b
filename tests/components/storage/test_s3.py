"""S3 storage against a real S3 server (SeaweedFS): URI forms, round trips, errors that name the fix."""

from __future__ import annotations

import pytest

from components.storage import StorageError, download_directory, parse_s3_uri, upload_directory


def test_uri_forms(monkeypatch):
    inline = parse_s3_uri("s3://minio.minio:9000/models/emotion-omni/3")
    assert (inline.endpoint, inline.bucket, inline.prefix, inline.secure) == (
        "minio.minio:9000",
        "models",
        "emotion-omni/3",
        False,
    )
    assert inline.uri == "s3://http://minio.minio:9000/models/emotion-omni/3"  # what tritonserver reads
    assert parse_s3_uri("s3://https://s3.example:443/b").secure
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "https://minio.example:9000")
    from_env = parse_s3_uri("s3://models/x")
    assert from_env.endpoint == "minio.example:9000" and from_env.secure and from_env.prefix == "x"
    assert from_env.child("4", "/emotion_omni/").prefix == "x/4/emotion_omni"
    with pytest.raises(ValueError, match="not an s3:// URI"):
        parse_s3_uri("/local/path")


def test_round_trip(s3_env, tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "a" / "b" / "deep.bin").write_bytes(bytes(range(256)) * 100)
    names = upload_directory(src, f"s3://{s3_env}/models/round/trip")
    assert names == ["round/trip/a/b/deep.bin", "round/trip/top.txt"]
    out = download_directory(f"s3://{s3_env}/models/round/trip", tmp_path / "out")
    assert (out / "a" / "b" / "deep.bin").read_bytes() == (src / "a" / "b" / "deep.bin").read_bytes()
    assert (out / "top.txt").read_text() == "top"


def test_errors_name_the_fix(s3_env, tmp_path):
    # Credentials and a server that went away: tests/faults (test_credentials.py, test_s3_outage.py).
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="create bucket 'nope'"):
        upload_directory(tmp_path, f"s3://{s3_env}/nope/x")
    with pytest.raises(StorageError, match="nothing at"):
        download_directory(f"s3://{s3_env}/models/absent", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="has no files to upload"):
        upload_directory(tmp_path / "o", f"s3://{s3_env}/models/x")
