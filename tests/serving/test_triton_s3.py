"""The cluster path, locally: publish a model repository to S3 and let the real tritonserver load it from there.

This is what the Helm chart does in a cluster (`--model-repository=s3://.../<version>` with AWS_* from a Secret).
"""

from __future__ import annotations

import numpy as np
import pytest

from components.audio.io import encode_wav
from components.contracts import USER_EMOTIONS
from serving.client import EmotionOmniClient
from serving.launcher import TritonConfig, TritonServer
from serving.repository import build_model_repository, publish_model_repository

pytestmark = pytest.mark.triton


def test_triton_serves_a_published_version_from_s3(s3_server, tiny_model_dir, tmp_path, monkeypatch):
    endpoint, key, secret = s3_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    repo = build_model_repository(tiny_model_dir, tmp_path / "repo", version=7)
    uri = publish_model_repository(repo, f"s3://{endpoint}/models/emotion-omni/triton", version=7)
    assert uri == f"s3://http://{endpoint}/models/emotion-omni/triton/7"

    wav = encode_wav((0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220)).astype(np.float32))
    with (
        TritonServer(TritonConfig(model_repository=uri, work_dir=str(tmp_path / "triton"))) as server,
        EmotionOmniClient(server.http_url) as client,
    ):
        reply = client.chat(wav)
    assert reply.user_emotion in USER_EMOTIONS
