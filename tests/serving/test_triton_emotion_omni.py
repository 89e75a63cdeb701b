"""The real emotion_omni model (tiny, untrained) on a live tritonserver, through the SDK client.

Project audio helpers are imported inside fixtures so that, while they are missing, these tests fail one
by one instead of aborting the whole collection.
"""

from __future__ import annotations

import io
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from components.contracts import (
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    RESPONSE_EMOTIONS,
    SAMPLE_RATE,
    TOKENIZER_FILE,
    USER_EMOTIONS,
)
from serving.client import EmotionOmniClient, ServingError
from serving.launcher import TritonConfig, TritonServer, TritonStartupError
from serving.repository import MODELS, build_model_repository

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def omni_server(tiny_model_dir, tmp_path_factory):
    repo = build_model_repository(tiny_model_dir, tmp_path_factory.mktemp("omni_repo"))
    config = TritonConfig(
        model_repository=str(repo),
        startup_timeout_s=300,
        models=MODELS,
        work_dir=str(tmp_path_factory.mktemp("omni_triton")),
    )
    with TritonServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def chirp_wav() -> bytes:
    from components.audio.io import encode_wav

    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE  # (T,) 1.5 s
    return encode_wav((0.3 * np.sin(2 * np.pi * (200 + 200 * t) * t)).astype(np.float32))  # 200 -> 800 Hz


def _audio_error(data: bytes) -> str:
    """What decode_wav says about `data`: the server must pass exactly this on."""
    from components.audio.io import AudioError, decode_wav

    with pytest.raises(AudioError) as excinfo:
        decode_wav(data)
    return str(excinfo.value)


def _send(url: str, data: bytes):
    with EmotionOmniClient(url, timeout_s=120) as client:  # closed: idle connections delay shutdown
        try:
            return client.chat(data)
        except ServingError as err:
            return err


def _assert_well_formed(reply) -> None:
    assert isinstance(reply.text, str)
    assert reply.response_emotion in RESPONSE_EMOTIONS
    assert reply.user_emotion in USER_EMOTIONS
    assert reply.emotion_vector.dtype == np.float32 and reply.emotion_vector.ndim == 1
    assert reply.emotion_vector.size > 0 and np.isfinite(reply.emotion_vector).all()
    if any(c.isalnum() for c in reply.text):  # the model's own voice: 640 samples (40 ms) per speech unit
        with wave.open(io.BytesIO(reply.audio_wav)) as wav:
            assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, SAMPLE_RATE, 2)
            assert wav.getnframes() > 0 and wav.getnframes() % 640 == 0
        assert reply.speech_note == ""
    else:  # an untrained model may say nothing speakable: no audio, and the reason, never an error
        assert reply.audio_wav == b"" and "nothing to say" in reply.speech_note


def test_a_valid_wav_gets_all_six_outputs(omni_server, chirp_wav):
    with EmotionOmniClient(omni_server.http_url, timeout_s=120) as client:
        assert client.is_ready()
        reply = client.chat(chirp_wav)
    _assert_well_formed(reply)
    assert reply.latency_s > 0


@pytest.mark.parametrize("payload", [b"", b"RIFF\x24\x00\x00\x00WAVEfmt garbage"], ids=["empty", "corrupt"])
def test_bad_audio_is_refused_with_the_reason_and_the_server_goes_on(omni_server, chirp_wav, payload):
    error = _send(omni_server.http_url, payload)
    assert isinstance(error, ServingError), error
    assert error.status == "400"  # INVALID_ARG: the caller's fault, not the server's
    assert f"AUDIO: {_audio_error(payload)}" in error.message
    _assert_well_formed(_send(omni_server.http_url, chirp_wav))


def test_a_batch_mixing_good_and_bad_requests(omni_server, chirp_wav):
    payloads = [chirp_wav, b"", chirp_wav, b"not a wav at all", chirp_wav]
    with ThreadPoolExecutor(len(payloads)) as pool:  # concurrent, so Triton batches them together
        results = list(pool.map(lambda p: _send(omni_server.http_url, p), payloads))
    for payload, result in zip(payloads, results):
        if payload is chirp_wav:
            _assert_well_formed(result)
        else:
            assert isinstance(result, ServingError), result
            assert _audio_error(payload) in result.message
    _assert_well_formed(_send(omni_server.http_url, chirp_wav))


def _pcm(wav_bytes: bytes) -> np.ndarray:
    if not wav_bytes:
        return np.zeros(0, dtype=np.int16)
    with wave.open(io.BytesIO(wav_bytes)) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)


def test_batched_and_one_by_one_replies_are_the_same(omni_server):
    """Turns of different lengths sent together (Triton batches them: padding in every stage) get the replies
    they get one at a time: the same words, emotions and speech (16-bit samples within one step of rounding)."""
    from components.audio.io import encode_wav

    t = np.arange(int(2.4 * SAMPLE_RATE)) / SAMPLE_RATE
    turns = [
        encode_wav((0.3 * np.sin(2 * np.pi * f * t[:n])).astype(np.float32))
        for f, n in ((220, 8000), (330, 38400), (180, 20000), (260, 30000))
    ]
    alone = [_send(omni_server.http_url, w) for w in turns]
    with ThreadPoolExecutor(len(turns)) as pool:
        together = list(pool.map(lambda w: _send(omni_server.http_url, w), turns))
    for a, b in zip(alone, together):
        assert (a.text, a.response_emotion, a.user_emotion) == (b.text, b.response_emotion, b.user_emotion)
        assert np.allclose(a.emotion_vector, b.emotion_vector, atol=1e-4)
        pa, pb = _pcm(a.audio_wav), _pcm(b.audio_wav)
        assert pa.shape == pb.shape and np.abs(pa.astype(int) - pb.astype(int)).max(initial=0) <= 1


def test_a_broken_export_fails_the_load_with_the_reason(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for name in (MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, TOKENIZER_FILE):
        (export / name).write_text("not what the exporter writes")
    repo = build_model_repository(export, tmp_path / "repo")
    server = TritonServer(TritonConfig(model_repository=str(repo), work_dir=str(tmp_path / "work")))
    with pytest.raises(TritonStartupError, match="could not load Emotion Omni from .*weights"):
        server.start()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a host without a GPU")
def test_a_gpu_repository_on_a_host_without_gpus_fails_the_load(tiny_model_dir, tmp_path):
    repo = build_model_repository(tiny_model_dir, tmp_path / "repo", instance_kind="gpu")
    server = TritonServer(TritonConfig(model_repository=str(repo), work_dir=str(tmp_path / "work")))
    # Triton itself refuses before model.py runs; the chart's gpu profile is where this repository belongs.
    with pytest.raises(TritonStartupError, match="emotion_omni.*KIND_GPU"):
        server.start()


def _scrape(server) -> dict[str, float]:
    """Every sample on Triton's metrics port, keyed by its line's name and labels."""
    import urllib.request

    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def _total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and all(w in k for w in wanted))


def test_custom_metrics_count_outcomes_that_triton_does_not(omni_server, chirp_wav):
    """Two answered requests and one with bad audio: the model's own series see all three for what they were,
    while Triton's nv_inference_request_failure stays where it was (it counts the bad one as a success)."""
    from components import contracts as c

    before = _scrape(omni_server)
    for payload in (chirp_wav, b"", chirp_wav):
        _send(omni_server.http_url, payload)
    after = _scrape(omni_server)

    def moved(name, **labels):
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert moved(c.METRIC_REQUESTS, outcome=c.OUTCOME_SUCCESS) == 2
    assert moved(c.METRIC_REQUESTS, outcome=c.OUTCOME_ERROR, reason=c.ERROR_BAD_AUDIO) == 1
    assert moved(c.METRIC_REQUESTS, outcome=c.OUTCOME_ERROR, reason=c.ERROR_INFERENCE) == 0
    assert moved("nv_inference_request_failure", model=c.TRITON_MODEL_NAME) == 0  # Triton's blind spot
    assert moved(f"{c.METRIC_REPLY_SECONDS}_count", model=c.TRITON_MODEL_NAME) == 2
    assert moved(f"{c.METRIC_REPLY_SECONDS}_sum") > 0
    assert moved(c.METRIC_AUDIO_SECONDS, direction="in") == pytest.approx(3.0, abs=0.01)  # 2 x 1.5 s heard
    assert moved(c.METRIC_AUDIO_SECONDS, direction="out") >= 0
    assert moved(c.METRIC_REPLY_EMOTIONS) == 2  # one chosen emotion per answered reply


CORRUPT_WAV = b"RIFF\x24\x00\x00\x00WAVEfmt garbage"


def _stream(server, payload: bytes, stop_after: int | None = None) -> list:
    from serving.stream_client import EmotionOmniStreamClient

    events = []
    with EmotionOmniStreamClient(server.grpc_url) as client:
        for event in client.chat_stream(payload):
            events.append(event)
            if stop_after is not None and len(events) >= stop_after:
                break  # the consumer goes away mid-stream: the request is cancelled
    return events


def test_the_stream_sends_text_first_then_audio_chunks_then_the_end(omni_server, chirp_wav):
    from serving.stream_client import AudioChunk, ReplyText, StreamEnd

    events = _stream(omni_server, chirp_wav)
    head, *chunks, end = events
    assert isinstance(head, ReplyText) and isinstance(end, StreamEnd)
    assert all(isinstance(c, AudioChunk) for c in chunks) and [c.index for c in chunks] == list(range(len(chunks)))
    assert head.response_emotion in RESPONSE_EMOTIONS and head.user_emotion in USER_EMOTIONS
    if any(ch.isalnum() for ch in head.text):  # speakable: the model's voice arrives in pieces, in order
        assert chunks and head.speech_note == ""
        assert all(c.samples.dtype == np.float32 and c.samples.size > 0 for c in chunks)
        assert head.latency_s <= chunks[0].latency_s <= end.total_s
        assert end.first_audio_s == chunks[0].latency_s
        assert end.audio_s == pytest.approx(sum(c.samples.size for c in chunks) / SAMPLE_RATE, abs=1e-3)
    else:
        assert not chunks and "nothing to say" in head.speech_note and end.first_audio_s is None


def test_bad_audio_on_the_stream_gets_one_error_and_the_stream_ends(omni_server, chirp_wav):
    with pytest.raises(ServingError) as error:
        _stream(omni_server, CORRUPT_WAV)
    assert error.value.status == "StatusCode.INVALID_ARGUMENT" or "AUDIO:" in error.value.message
    assert f"AUDIO: {_audio_error(CORRUPT_WAV)}" in error.value.message
    from serving.stream_client import StreamEnd

    assert isinstance(_stream(omni_server, chirp_wav)[-1], StreamEnd)  # the server goes on streaming


def test_a_client_that_leaves_mid_stream_frees_the_server(omni_server, chirp_wav):
    """Stopping after the text cancels the request; the server ends it (cancelled, or finished first on this
    tiny model) without an error and goes on serving."""
    from components import contracts as c

    before = _scrape(omni_server)
    assert len(_stream(omni_server, chirp_wav, stop_after=1)) == 1
    assert isinstance(_stream(omni_server, chirp_wav)[0].text, str)  # the next stream is served
    after = _scrape(omni_server)

    def moved(outcome):
        labels = {"model": c.TRITON_STREAM_MODEL_NAME, "outcome": outcome}
        return _total(after, c.METRIC_REQUESTS, **labels) - _total(before, c.METRIC_REQUESTS, **labels)

    assert moved(c.OUTCOME_SUCCESS) + moved(c.OUTCOME_CANCELLED) == 2 and moved(c.OUTCOME_ERROR) == 0


def test_several_callers_stream_at_once(omni_server, chirp_wav):
    """Concurrent streams (two instances, then Triton's queue): each caller gets its own whole reply, the same as
    a caller alone gets (no events cross between streams)."""
    from serving.stream_client import AudioChunk, ReplyText

    def heard(events):
        chunks = [e.samples for e in events if isinstance(e, AudioChunk)]
        return events[0].text, np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    text, audio = heard(_stream(omni_server, chirp_wav))
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: _stream(omni_server, chirp_wav), range(3)))
    for events in results:
        assert isinstance(events[0], ReplyText)
        their_text, their_audio = heard(events)
        assert their_text == text and np.array_equal(their_audio, audio)


def test_the_asyncio_client_streams_the_same_events(omni_server, chirp_wav):
    import asyncio

    from serving.stream_client import EmotionOmniStreamClient, ReplyText, StreamEnd

    async def collect():
        client = EmotionOmniStreamClient(omni_server.grpc_url)
        try:
            return [event async for event in client.chat_stream_async(chirp_wav)]
        finally:
            client.close()

    events = asyncio.run(collect())
    assert isinstance(events[0], ReplyText) and isinstance(events[-1], StreamEnd)


def test_omni_chat_stream_writes_the_chunks_and_prints_first_audio(omni_server, chirp_wav, tmp_path):
    from omni.cli import chat

    (tmp_path / "in.wav").write_bytes(chirp_wav)
    answer = chat(tmp_path / "in.wav", tmp_path / "reply.wav", url=omni_server.grpc_url, stream=True)
    with wave.open(str(tmp_path / "reply.wav")) as written:
        assert written.getframerate() == SAMPLE_RATE
        assert written.getnframes() / SAMPLE_RATE == pytest.approx(answer["audio_s"], abs=1e-3)
    assert answer["text_latency_s"] <= answer["total_s"]
    assert (answer["first_audio_s"] is None) == (answer["audio_s"] == 0)


def test_local_prometheus_scrapes_the_server_with_the_charts_alerts(omni_server, chirp_wav, tmp_path):
    """`omni serve --prometheus`: Debian's Prometheus scrapes the model's own series and loads the chart's rules."""
    import json
    import shutil
    import time
    import urllib.parse
    import urllib.request

    from components import contracts as c
    from serving.local_prometheus import LocalPrometheus

    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    _send(omni_server.http_url, b"")  # one model error for the series to show
    with LocalPrometheus(omni_server.metrics_url, tmp_path / "prom", interval_s=1) as prometheus:

        def query(expr):
            url = f"{prometheus.url}/api/v1/query?query={urllib.parse.quote(expr)}"
            return json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]

        expr = (
            f'{c.METRIC_REQUESTS}{{model="{c.TRITON_MODEL_NAME}", outcome="error", reason="{c.ERROR_BAD_AUDIO}", '
            f'namespace="local"}}'
        )
        deadline = time.monotonic() + 30
        while not query(expr) and time.monotonic() < deadline:
            time.sleep(0.5)
        (series,) = query(expr)
        assert float(series["value"][1]) >= 1 and series["metric"]["service"] == "local-emotion-omni-triton"
        rules = json.loads(urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5).read())
        alerts = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert {"EmotionOmniHighErrorRatio", "EmotionOmniHighLatencyP95", "EmotionOmniNoReadyReplicas"} <= alerts
