"""Streaming SDK: hear the reply as it is made. gRPC streaming to the decoupled emotion_omni_stream model.

    from serving.stream_client import EmotionOmniStreamClient
    with EmotionOmniStreamClient("127.0.0.1:8001") as client:          # Triton's gRPC port
        for event in client.chat_stream(wav_bytes):
            if isinstance(event, ReplyText): print(event.text, event.response_emotion)
            elif isinstance(event, AudioChunk): player.write(event.samples)   # float32, 16 kHz
            elif isinstance(event, StreamEnd): print(event.first_audio_s, event.total_s)

Events arrive in order: one ReplyText, then AudioChunks, then one StreamEnd. Stopping the iteration early (break,
an exception) cancels the request, and the server stops generating. `chat_stream_async` is the asyncio form.
"""

from __future__ import annotations

import queue
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from components.contracts import (
    INPUT_AUDIO,
    OUTPUT_AUDIO_CHUNK,
    OUTPUT_EMOTION_VECTOR,
    OUTPUT_RESPONSE_EMOTION,
    OUTPUT_RESPONSE_TEXT,
    OUTPUT_SPEECH_NOTE,
    OUTPUT_USER_EMOTION,
    SAMPLE_RATE,
    TRITON_GRPC_PORT,
    TRITON_STREAM_MODEL_NAME,
)
from serving.client import ServingError, check_size

_FINAL = "triton_final_response"  # the parameter Triton sets on a stream's last response


@dataclass
class ReplyText:
    """The reply's words and emotions: the first event, before any audio."""

    text: str
    response_emotion: str
    user_emotion: str
    emotion_vector: np.ndarray
    speech_note: str  # why no audio will follow; "" when it will
    latency_s: float  # since the request was sent


@dataclass
class AudioChunk:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE: the next piece of the spoken reply
    index: int  # 0, 1, ... in playing order
    latency_s: float  # since the request was sent


@dataclass
class StreamEnd:
    first_audio_s: float | None  # when the first chunk arrived; None when the reply had no audio
    total_s: float
    audio_s: float  # seconds of audio received


StreamEvent = ReplyText | AudioChunk | StreamEnd


class EmotionOmniStreamClient:
    """Client of emotion_omni_stream over Triton's gRPC streaming API."""

    def __init__(
        self,
        url: str = f"127.0.0.1:{TRITON_GRPC_PORT}",
        timeout_s: float = 120.0,
        model_name: str = TRITON_STREAM_MODEL_NAME,
    ):
        self.url, self.timeout_s, self.model_name = url, timeout_s, model_name
        self._client = grpcclient.InferenceServerClient(url)

    def chat_stream(self, wav_bytes: bytes) -> Iterator[StreamEvent]:
        """Send one WAV file's bytes; yield the reply's text, its audio chunks as they are made, then the end."""
        results: queue.Queue = queue.Queue()
        self._client.start_stream(callback=lambda result, error: results.put((result, error)))
        start, done = time.perf_counter(), False
        try:
            self._client.async_stream_infer(
                self.model_name, [_audio_input(wav_bytes)], enable_empty_final_response=True
            )
            parser = _Parser(start)
            while not done:
                try:
                    result, error = results.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise ServingError(
                        f"no stream response within timeout_s={self.timeout_s} s", url=self.url
                    ) from None
                if error is not None:
                    done = True  # an error response ends the request
                    raise _serving_error(error, self.url)
                events, done = parser.parse(result)
                yield from events
        finally:
            # A consumer that stopped early cancels the request: the server sees it and stops generating.
            self._client.stop_stream(cancel_requests=not done)

    async def chat_stream_async(self, wav_bytes: bytes) -> AsyncIterator[StreamEvent]:
        """`chat_stream` for asyncio callers (tritonclient.grpc.aio)."""
        import tritonclient.grpc.aio as aioclient

        async def requests():  # one request; then the client half-closes, and the server ends the stream after it
            yield {"model_name": self.model_name, "inputs": [_audio_input(wav_bytes, aioclient)]}

        client = aioclient.InferenceServerClient(self.url)
        parser = _Parser(time.perf_counter())
        try:
            # The aio client cannot ask for the empty final response (a reserved parameter): the end of the
            # gRPC stream is the end of the reply.
            async for result, error in client.stream_infer(requests(), stream_timeout=self.timeout_s):
                if error is not None:
                    raise _serving_error(error, self.url)
                for event in parser.parse(result)[0]:
                    yield event
            yield parser.end()
        finally:
            await client.close()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EmotionOmniStreamClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Parser:
    """Stream responses -> events: the first carries the text, the next ones audio, the flagged one ends it."""

    def __init__(self, start: float):
        self.start, self.chunks, self.first_audio, self.audio_s = start, 0, None, 0.0

    def parse(self, result) -> tuple[list[StreamEvent], bool]:
        now, events = time.perf_counter() - self.start, []
        text = result.as_numpy(OUTPUT_RESPONSE_TEXT)
        if text is not None:
            events.append(
                ReplyText(
                    text=text[0].decode("utf-8"),
                    response_emotion=result.as_numpy(OUTPUT_RESPONSE_EMOTION)[0].decode(),
                    user_emotion=result.as_numpy(OUTPUT_USER_EMOTION)[0].decode(),
                    emotion_vector=result.as_numpy(OUTPUT_EMOTION_VECTOR).astype(np.float32),
                    speech_note=result.as_numpy(OUTPUT_SPEECH_NOTE)[0].decode("utf-8"),
                    latency_s=now,
                )
            )
        chunk = result.as_numpy(OUTPUT_AUDIO_CHUNK)
        if chunk is not None:
            self.first_audio = now if self.first_audio is None else self.first_audio
            self.audio_s += chunk.size / SAMPLE_RATE
            events.append(AudioChunk(chunk.astype(np.float32), self.chunks, now))
            self.chunks += 1
        parameters = result.get_response().parameters
        done = _FINAL in parameters and parameters[_FINAL].bool_param
        if done:
            events.append(self.end())
        return events, done

    def end(self) -> StreamEnd:
        return StreamEnd(self.first_audio, time.perf_counter() - self.start, round(self.audio_s, 3))


def _audio_input(wav_bytes: bytes, module=grpcclient):
    if not isinstance(wav_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"wav_bytes must be the bytes of a WAV file, got {type(wav_bytes).__name__}")
    wav_bytes = bytes(wav_bytes)
    check_size(len(wav_bytes), "the audio")
    audio = module.InferInput(INPUT_AUDIO, [1], "BYTES")  # decoupled model: no batch dimension
    audio.set_data_from_numpy(np.array([wav_bytes], dtype=np.object_))
    return audio


def _serving_error(error, url: str) -> ServingError:
    if isinstance(error, InferenceServerException):
        return ServingError(error.message(), url=url, status=error.status())
    return ServingError(f"{type(error).__name__}: {error}", url=url)
