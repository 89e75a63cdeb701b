"""Missing or wrong S3 credentials: every object-store call fails before writing anything, naming the variable to
set or check and the Secret it comes from in a cluster, never echoing the secret. Against a real, signature-checking
SeaweedFS. MLflow's credentials and an unreachable MLflow are proved in tests/components/registry (README: Reliability).
"""

from __future__ import annotations

import os

import pytest

from components.storage import StorageError, list_objects, upload_directory

pytestmark = pytest.mark.faults

SECRET = "in clusters it comes from the mlflow-credentials Secret"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AWS_ACCESS_KEY_ID", None, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ("AWS_SECRET_ACCESS_KEY", None, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ("AWS_ACCESS_KEY_ID", "not-a-key", "InvalidAccessKeyId: .*; check AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "rotated-away", "SignatureDoesNotMatch: .*; check AWS_SECRET_ACCESS_KEY"),
    ],
    ids=["key-missing", "secret-missing", "key-wrong", "secret-wrong"],
)
def test_bad_credentials_name_the_variable_and_the_secret(s3_env, tmp_path, monkeypatch, variable, value, message):
    uri = f"s3://{s3_env}/models/credentials/{tmp_path.name}"
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    good = {name: os.environ[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    for call in (lambda: upload_directory(tmp_path, uri), lambda: list_objects(uri)):
        with pytest.raises(StorageError, match=f"{message}.*{SECRET}") as error:
            call()
        assert "rotated-away" not in str(error.value) and good["AWS_SECRET_ACCESS_KEY"] not in str(error.value)

    monkeypatch.setenv(variable, good[variable])
    assert list_objects(uri) == []  # the refused upload wrote nothing
