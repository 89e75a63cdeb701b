"""smoke_test(): start tritonserver on a model repository, answer one held-out utterance, stop.

The pipeline's last step, and the proof that what was registered actually serves: the reply's text,
emotions and WAV (the model's own voice) are kept as the step's output, with the version and lineage ID that
answered and the served audio's DNSMOS (a stand-in for UTMOS: components.evaluation.dnsmos).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import soundfile as sf

from components.errors import ConfigError
from components.evaluation.dnsmos import MetricNotComputed, dnsmos
from components.synthesis import read_manifest
from serving.client import EmotionOmniClient
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
