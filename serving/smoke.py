"""smoke_test(): start tritonserver on a model repository, answer one held-out utterance, stop.

The pipeline's last step, and the proof that what was registered actually serves: the reply's text,
emotions and WAV (the model's own voice) are kept as the step's output, with the version and lineage ID that
answered and the served audio's DNSMOS (a stand-in for UTMOS: components.evaluation.dnsmos).

smoke_request(): the same proof against a server that is already running, one request; a deploy sends it to the
candidate before callers can reach a version, and again after the swap (serving/deploy_local.py, deploy_cluster.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from components.audio.io import encode_wav
from components.contracts import RESPONSE_EMOTIONS, SAMPLE_RATE, TRITON_MODEL_NAME, USER_EMOTIONS
from components.deploy.errors import VerificationFailed
from components.errors import ConfigError
from components.evaluation.dnsmos import MetricNotComputed, dnsmos
from components.synthesis import read_manifest
from serving.client import EmotionOmniClient, ServingError
from serving.launcher import TritonConfig, TritonServer


def smoke_test(model_repository: Path, dataset_dir: Path, out_dir: Path, split: str = "test") -> dict:
    """Send the first `split` utterance of `dataset_dir` through Triton; write reply.wav + reply.json."""
    rows = [r for r in read_manifest(dataset_dir) if r["split"] == split]
    if not rows:
        raise ConfigError(f"{dataset_dir} has no '{split}' rows to send")
    row = rows[0]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = TritonConfig(model_repository=str(model_repository), work_dir=str(out_dir / "triton"))
    # Close the client before the server: an idle keep-alive connection makes Triton wait out its exit timeout.
    with TritonServer(config) as server, EmotionOmniClient(server.http_url) as client:
        reply = client.chat_file(Path(dataset_dir) / row["user_wav"])
        serving = client.lineage()
        endpoint = server.http_url
    (out_dir / "reply.wav").write_bytes(reply.audio_wav)
    quality = _served_dnsmos(reply.audio_wav)
    result = {
        "endpoint": endpoint,
        "utterance_id": row["id"],
        "user_text": row["user_text"],
        "user_emotion_reference": row["user_emotion"],
        "user_emotion": reply.user_emotion,
        "response_text": reply.text,
        "response_emotion": reply.response_emotion,
        "reference_response": row["response_text"],
        "latency_s": round(reply.latency_s, 3),
        "reply_wav": str(out_dir / "reply.wav"),
        "speech_note": reply.speech_note,
        "reply_audio_s": round(sf.info(io.BytesIO(reply.audio_wav)).duration, 2) if reply.audio_wav else 0.0,
        "model_version": reply.model_version,
        "lineage_id": serving["lineage_id"],
        **quality,
    }
    (out_dir / "reply.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _served_dnsmos(wav: bytes) -> dict:
    """DNSMOS of the served reply audio, or why it was not computed (no audio, or no DNSMOS models here)."""
    if not wav:
        return {"served_dnsmos_ovrl": None, "served_dnsmos_note": "not computed: the reply has no audio"}
    try:
        wave, rate = sf.read(io.BytesIO(wav), dtype="float32")
        [score] = dnsmos([wave], rate)
    except (MetricNotComputed, ValueError) as err:  # ValueError: a silent or empty clip
        return {"served_dnsmos_ovrl": None, "served_dnsmos_note": f"not computed: {err}"}
    return {
        "served_dnsmos_ovrl": round(score["ovrl"], 3),
        "served_dnsmos_sig": round(score["sig"], 3),
        "served_dnsmos_bak": round(score["bak"], 3),
        "served_dnsmos_note": "DNSMOS P.835, a stand-in for UTMOS",
    }


def smoke_request(
    url: str,
    wav: bytes,
    *,
    model_name: str = TRITON_MODEL_NAME,
    timeout_s: float = 120.0,
    expect_version: int | None = None,
) -> dict:
    """Send `wav` to `model_name` at `url` once and check the reply is a whole answer (text, or the model's reason
    for none; emotions from the contract's lists; audio that decodes; the expected version); raise VerificationFailed
    naming what is wrong. Returns {text, response_emotion, user_emotion, latency_s, model_version, audio_s,
    speech_note}."""
    with EmotionOmniClient(url, timeout_s, model_name) as client:  # closed: idle connections delay shutdown
        try:
            reply = client.chat(wav)
        except ServingError as err:
            raise VerificationFailed(f"the smoke request to {model_name} at {url} failed: {err.message}") from None
    where = f"{model_name} at {url}"
    # An empty text is an answer only with the model's reason for it (model.py: "nothing to say", what an untrained
    # model says to a wordless probe); empty with no reason is a reply that lost its text.
    if not reply.text and not reply.speech_note:
        raise VerificationFailed(f"{where} answered the smoke request with empty text and no speech note saying why")
    if reply.response_emotion not in RESPONSE_EMOTIONS:
        raise VerificationFailed(
            f"{where} answered with response emotion {reply.response_emotion!r}, not one of {RESPONSE_EMOTIONS}"
        )
    if reply.user_emotion not in USER_EMOTIONS:
        raise VerificationFailed(f"{where} heard user emotion {reply.user_emotion!r}, not one of {USER_EMOTIONS}")
    audio_s = 0.0
    if reply.audio_wav:
        try:
            audio_s = sf.info(io.BytesIO(reply.audio_wav)).duration
        except sf.SoundFileError as err:
            raise VerificationFailed(f"{where} answered with reply audio that does not decode: {err}") from None
    if expect_version is not None and reply.model_version != str(expect_version):
        raise VerificationFailed(
            f"{where} answered from version {reply.model_version!r}, expected {expect_version}: another version "
            "still serves unversioned requests"
        )
    return {
        "text": reply.text,
        "response_emotion": reply.response_emotion,
        "user_emotion": reply.user_emotion,
        "latency_s": round(reply.latency_s, 3),
        "model_version": reply.model_version,
        "audio_s": round(audio_s, 2),
        "speech_note": reply.speech_note,
    }


def probe_wav(seconds: float = 1.5) -> bytes:
    """A deterministic voiced probe, 16 kHz WAV: eight harmonics of a pitch that rises 140 -> 220 Hz and falls back,
    faded in and out, for deploys that have no held-out utterance at hand.

    A smoke request with it proves a version loads and answers with a well-formed reply (text, emotions, audio), not
    that it understands speech: it is a voice-like sound with no words in it."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE  # (T,)
    f0 = 140 + 80 * np.sin(np.pi * t / seconds)  # (T,) Hz: the rise and fall of a spoken phrase
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE  # (T,)
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))  # (T,) a glottal-like 1/k spectrum
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)  # 50 ms fades: no clicks
    wave = 0.3 * voiced * envelope / np.abs(voiced).max()
    return encode_wav(wave.astype(np.float32))
