"""Python SDK for product teams: send a spoken turn to Emotion Omni on Triton, get the reply back.

    from serving.client import EmotionOmniClient
    reply = EmotionOmniClient("127.0.0.1:8000").chat_file("hello.wav")
    print(reply.text, reply.response_emotion)
    Path("reply.wav").write_bytes(reply.audio_wav)

One of a trio with model_repository/emotion_omni/{config.pbtxt, 1/model.py}; the tensor names are the
ones in components.contracts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from components.contracts import (
    INPUT_AUDIO,
    MAX_AUDIO_BYTES,
    OUTPUT_EMOTION_VECTOR,
    OUTPUT_RESPONSE_AUDIO,
    OUTPUT_RESPONSE_EMOTION,
    OUTPUT_RESPONSE_TEXT,
    OUTPUT_SPEECH_NOTE,
    OUTPUT_USER_EMOTION,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    TRITON_MODEL_NAME,
)
from components.errors import ConfigError, OmniError

_OUTPUTS = (
    OUTPUT_RESPONSE_TEXT,
    OUTPUT_RESPONSE_EMOTION,
    OUTPUT_USER_EMOTION,
    OUTPUT_EMOTION_VECTOR,
    OUTPUT_RESPONSE_AUDIO,
    OUTPUT_SPEECH_NOTE,
)


@dataclass
class ChatReply:
    """The model's answer to one spoken turn."""

    text: str
    response_emotion: str  # one of contracts.RESPONSE_EMOTIONS
    user_emotion: str  # one of contracts.USER_EMOTIONS: what the model heard in the user's voice
    emotion_vector: np.ndarray  # (E,) float32 response-emotion embedding
    audio_wav: bytes  # the model's own spoken reply, 16 kHz mono 16-bit WAV; b"" when there is none
    latency_s: float  # round trip as seen by the client
    speech_note: str = ""  # why audio_wav is empty (e.g. nothing speakable); "" when it is not
    model_version: str = ""  # the Triton (= MLflow registry) version that answered; EmotionOmniClient.lineage() tells
    # which pipeline run made it


class ServingError(OmniError, RuntimeError):
    """The server refused or failed the request; `message` is Triton's (or the model's) own text."""

    def __init__(self, message: str, *, url: str, status: str | None = None):
        super().__init__(f"{url}: {message}")
        self.message = message
        self.url = url
        self.status = status  # HTTP status as a string, e.g. "400" for bad audio; None when unknown


class EmotionOmniClient:
    """Client of the emotion_omni model over Triton's HTTP API."""

    def __init__(
        self, url: str = f"127.0.0.1:{TRITON_HTTP_PORT}", timeout_s: float = 60.0, model_name: str = TRITON_MODEL_NAME
    ):
        self.url = url  # host:port, no scheme (tritonclient's form; TritonServer.http_url)
        self.timeout_s = timeout_s
        self.model_name = model_name
        # network_timeout covers the whole inference, which is seconds on a CPU.
        self._client = httpclient.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)

    def is_ready(self) -> bool:
        """True when the server is up and the model is loaded; never raises."""
        try:
            return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model_name))
        except (InferenceServerException, OSError):  # refused, reset, timed out
            return False

    def chat(self, wav_bytes: bytes) -> ChatReply:
        """Send one WAV file's bytes (any rate; the server resamples) and return the model's reply."""
        if not isinstance(wav_bytes, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"wav_bytes must be the bytes of a WAV file, got {type(wav_bytes).__name__}; "
                "use chat_file(path) for a file on disk"
            )
        wav_bytes = bytes(wav_bytes)
        check_size(len(wav_bytes), "the audio")
        audio = httpclient.InferInput(INPUT_AUDIO, [1, 1], "BYTES")  # (batch=1, 1)
        audio.set_data_from_numpy(np.array([[wav_bytes]], dtype=np.object_), binary_data=True)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in _OUTPUTS]
        start = time.perf_counter()
        try:
            result = self._client.infer(self.model_name, [audio], outputs=outputs)
        except InferenceServerException as err:
            raise ServingError(err.message(), url=self.url, status=err.status()) from err
        except ConnectionError as err:
            raise ServingError(
                f"cannot connect to Triton at {self.url} ({err}); start the server with "
                "`omni serve` or pass the right url",
                url=self.url,
            ) from err
        except TimeoutError as err:
            raise ServingError(
                f"no reply within timeout_s={self.timeout_s} s; the server may be overloaded, "
                "or raise timeout_s for long clips on a CPU",
                url=self.url,
            ) from err
        except Exception as err:  # e.g. geventhttpclient's HTTPParseError when the port is not Triton's HTTP
            raise ServingError(
                f"{type(err).__name__}: {err}; is {self.url} Triton's HTTP port (default {TRITON_HTTP_PORT}, "
                f"not gRPC {TRITON_GRPC_PORT} or metrics {TRITON_METRICS_PORT})?",
                url=self.url,
            ) from err
        latency_s = time.perf_counter() - start

        def first(name: str):
            return result.as_numpy(name)[0]  # drop the batch dimension

        return ChatReply(
            text=first(OUTPUT_RESPONSE_TEXT)[0].decode("utf-8"),
            response_emotion=first(OUTPUT_RESPONSE_EMOTION)[0].decode("utf-8"),
            user_emotion=first(OUTPUT_USER_EMOTION)[0].decode("utf-8"),
            emotion_vector=first(OUTPUT_EMOTION_VECTOR).astype(np.float32),
            audio_wav=bytes(first(OUTPUT_RESPONSE_AUDIO)[0]),
            speech_note=first(OUTPUT_SPEECH_NOTE)[0].decode("utf-8"),
            latency_s=latency_s,
            model_version=str(result.get_response().get("model_version", "")),
        )

    def lineage(self) -> dict[str, str | list[str]]:
        """What is serving: the loaded versions (Triton's model metadata) and the lineage ID the published repository
        carries (its config.pbtxt "lineage_id" parameter; "" for a repository built without one)."""
        try:
            metadata = self._client.get_model_metadata(self.model_name)
            config = self._client.get_model_config(self.model_name)
        except InferenceServerException as err:
            raise ServingError(err.message(), url=self.url, status=err.status()) from err
        parameter = (config.get("parameters") or {}).get("lineage_id") or {}
        return {
            "model_name": self.model_name,
            "versions": list(metadata.get("versions", [])),
            "lineage_id": parameter.get("string_value", ""),
        }

    def chat_file(self, path: str | Path) -> ChatReply:
        """`chat` with the bytes of a WAV file on disk."""
        path = Path(path)
        check_size(path.stat().st_size, str(path))  # before reading a file that may be huge
        return self.chat(path.read_bytes())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EmotionOmniClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def check_size(n_bytes: int, what: str) -> None:
    if n_bytes > MAX_AUDIO_BYTES:
        raise ConfigError(
            f"{what} is {n_bytes} bytes, over the server's limit of MAX_AUDIO_BYTES={MAX_AUDIO_BYTES} "
            "(30 s of 48 kHz 16-bit stereo); send a shorter clip, or mono 16 kHz audio"
        )
