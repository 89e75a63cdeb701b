"""A client for an OpenAI-compatible chat-completions endpoint that answers JSON to a schema.

Shared by the LLM dialogue writer (synthesis/llm.py) and the empathy judge (evaluation/empathy_judge.py). Each
subclasses ChatConfig with its own environment variables, so every message names the variables to fix:

    @dataclass
    class LLMConfig(ChatConfig):
        ENDPOINT: ClassVar[ChatEndpoint] = ChatEndpoint("OMNI_LLM", "the LLM dialogue writer", answer="dialogue")

    client = ChatClient(LLMConfig.from_env(cache_dir=Path("llm-cache")))
    client.check()                                   # fail before any work starts
    texts = client.ask(messages, SCHEMA, parse, name="dialogue", subject="travel/angry (seed 7)", seed=7)

What every caller gets: the key from <PREFIX>_API_KEY or the mounted-Secret file <PREFIX>_API_KEY_FILE, never in a
repr, log line or error; one rate limit across the threads sharing a client; retries with jittered exponential
backoff (or the server's Retry-After) for transport errors, 408, 429 and 5xx; at once for malformed answers, with
a new seed; a clear error for refusals (401/403/404/400); and an on-disk cache keyed by the request, so a rerun
never asks the same question twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import jsonschema
import requests

from components.errors import OmniError

MAX_DELAY_S = 60.0  # caps backoff and Retry-After alike, so a misbehaving server cannot stall a run for long

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound="ChatConfig")


class ChatError(OmniError, RuntimeError):
    """The endpoint is misconfigured, unreachable, refuses us, or gave no usable answer."""


class _Retry(Exception):
    """Worth another attempt: the endpoint was down or overloaded, or its answer was malformed."""

    def __init__(self, problem: str, retry_after: float | None = None, malformed: bool = False):
        super().__init__(problem)
        self.retry_after, self.malformed = retry_after, malformed


@dataclass(frozen=True)
class ChatEndpoint:
    """Who uses an endpoint and under which environment variables, for messages that name what to fix."""

    prefix: str  # "OMNI_LLM": OMNI_LLM_BASE_URL, OMNI_LLM_MODEL, OMNI_LLM_API_KEY, OMNI_LLM_API_KEY_FILE
    user: str  # "the LLM dialogue writer", as in "... needs OMNI_LLM_MODEL"
    answer: str = "answer"  # what one reply holds ("dialogue"), as in "gave no usable dialogue"
    fallback: str = ""  # the way out without an endpoint ("use the template grammar"), appended to the advice

    @property
    def base_url_var(self) -> str:
        return f"{self.prefix}_BASE_URL"

    @property
    def model_var(self) -> str:
        return f"{self.prefix}_MODEL"

    @property
    def api_key_var(self) -> str:
        return f"{self.prefix}_API_KEY"

    @property
    def api_key_file_var(self) -> str:
        return f"{self.prefix}_API_KEY_FILE"

    @property
    def variables(self) -> tuple[str, ...]:
        return self.base_url_var, self.model_var, self.api_key_var, self.api_key_file_var

    def or_fallback(self) -> str:
        return f", or {self.fallback}" if self.fallback else ""


@dataclass
class ChatConfig:
    """One endpoint's settings; subclass it with an ENDPOINT naming the environment variables."""

    ENDPOINT: ClassVar[ChatEndpoint]
    base_url: str  # ends in /v1; /chat/completions and /models are appended
    model: str
    api_key: str = field(repr=False)  # never in a repr, log line or error message
    timeout_s: float = 30.0  # per request
    max_retries: int = 5  # extra attempts after the first, for transport errors and malformed answers
    backoff_s: float = 1.0  # first retry delay; doubles per attempt, jittered, capped at MAX_DELAY_S
    requests_per_s: float = 2.0  # across all threads sharing one client; separate processes each get this
    cache_dir: Path | None = None  # None: no cache, every call is a request
    temperature: float = 0.8

    def __post_init__(self):
        e = self.ENDPOINT
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")) or not self.model:
            raise ChatError(
                f"{e.base_url_var}={self.base_url!r} must start with http:// or https:// (e.g. https://"
                f"api.openai.com/v1) and {e.model_var}={self.model!r} must name a model (e.g. gpt-4o)"
            )
        if min(self.timeout_s, self.requests_per_s) <= 0 or min(self.max_retries, self.backoff_s) < 0:
            raise ChatError(
                f"{type(self).__name__}: timeout_s and requests_per_s must be > 0, max_retries and backoff_s >= 0"
            )
        self.cache_dir = None if self.cache_dir is None else Path(self.cache_dir)

    @classmethod
    def from_env(cls: type[C], environ: Mapping[str, str] = os.environ, cache_dir: Path | None = None) -> C:
        """Read <PREFIX>_BASE_URL, <PREFIX>_MODEL and <PREFIX>_API_KEY (or the file <PREFIX>_API_KEY_FILE names)."""
        e = cls.ENDPOINT
        missing = [name for name in (e.base_url_var, e.model_var) if not environ.get(name, "").strip()]
        key, key_file = environ.get(e.api_key_var, "").strip(), environ.get(e.api_key_file_var, "").strip()
        if not key and key_file:
            try:
                key = Path(key_file).read_text().strip()
            except OSError as err:
                raise ChatError(
                    f"{e.api_key_file_var}={key_file!r} cannot be read ({err.strerror}); point it at the "
                    f"file where the Kubernetes Secret is mounted, or set {e.api_key_var}"
                ) from None
            if not key:
                raise ChatError(f"{e.api_key_file_var}={key_file!r} is empty; put the API key in that Secret")
        elif not key:
            missing.append(f"{e.api_key_var} (or {e.api_key_file_var})")
        if missing:
            raise ChatError(
                f"{e.user} needs {', '.join(missing)}: export them (e.g. {e.base_url_var}="
                f"https://api.openai.com/v1 {e.model_var}=gpt-4o {e.api_key_var}=...), or in a cluster "
                f"mount the key from a Kubernetes Secret as a file and set {e.api_key_file_var} to its "
                f"path{e.or_fallback()}"
            )
        return cls(environ[e.base_url_var].strip(), environ[e.model_var].strip(), key, cache_dir=cache_dir)


class ChatClient:
    """Asks one endpoint for schema-checked JSON answers; safe to share between threads (they share its rate)."""

    def __init__(self, config: ChatConfig):
        self.config = config
        self._lock = threading.Lock()
        self._next_start = 0.0  # monotonic time the next request may start

    def ask(
        self, messages: list[dict], schema: dict, parse: Callable[[dict], T], *, name: str, subject: str, seed: int = 0
    ) -> T:
        """`parse` of the endpoint's JSON answer to `messages`, constrained by response_format json_schema and
        validated against `schema` here too. `parse` raises ValueError for an answer that fits the schema but is
        still unusable; that counts as malformed and is asked again. The same request (model, messages,
        temperature, seed, schema) is served from the cache after its first answer. `name` labels the schema
        for the server; `subject` says what was asked for, in the error when every attempt fails."""
        c, e = self.config, self.config.ENDPOINT
        request = {"model": c.model, "messages": messages, "temperature": c.temperature, "seed": seed}
        cache = self._cache_path({**request, "schema": schema})
        if cache is not None:  # an absent or damaged entry falls through to a request, whose answer replaces it
            with contextlib.suppress(
                OSError, ValueError, KeyError, TypeError, AttributeError, jsonschema.ValidationError
            ):
                data = json.loads(cache.read_text())
                jsonschema.validate(data, schema)
                return parse(data)
        body = {
            **request,
            "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        }
        last, malformed = "", 0
        for attempt in range(c.max_retries + 1):
            try:
                # A seeded server would repeat a malformed answer, so each retry after one asks anew.
                data = self._post({**body, "seed": seed + malformed}, schema)
                result = _parsed(data, parse)
            except _Retry as err:
                last = f"malformed {e.answer}: {err}" if err.malformed else str(err)
                malformed, delay = malformed + err.malformed, err.retry_after
                if delay is None:
                    delay = c.backoff_s * 2**attempt * random.uniform(0.5, 1.0)
            else:
                if cache is not None:
                    _store(cache, data)
                return result
            if attempt < c.max_retries:
                log.warning("attempt %d: %s; retrying in %.2f s", attempt + 1, last, min(delay, MAX_DELAY_S))
                time.sleep(min(delay, MAX_DELAY_S))
        raise ChatError(
            f"{c.model} at {c.base_url} gave no usable {e.answer} for {subject} in {c.max_retries + 1} "
            f"attempts; last: {last}. Check the server's health and rate limits, raise "
            f"{type(c).__name__}.max_retries{e.or_fallback()}"
        )

    def check(self) -> None:
        """One cheap request (GET /models) that raises ChatError when the endpoint is unreachable or refuses the
        key."""
        try:
            response = self._request("GET", "/models")
        except requests.RequestException as err:
            raise ChatError(
                f"cannot reach {self.config.ENDPOINT.base_url_var}={self.config.base_url!r} "
                f"({type(err).__name__}); check the URL, that the server is up, and that this pod may "
                "reach it"
            ) from None
        # Some OpenAI-compatible servers have no /models; a 404 still proves the server is there.
        if response.status_code >= 400 and response.status_code != 404:
            raise ChatError(self._refused(response))

    def _cache_path(self, request: dict) -> Path | None:
        if self.config.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        return self.config.cache_dir / key[:2] / f"{key}.json"

    def _post(self, body: dict, schema: dict) -> dict:
        try:
            response = self._request("POST", "/chat/completions", json=body)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            raise _Retry(f"cannot reach {self.config.base_url} ({type(err).__name__})") from None
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}: {self._snippet(response)}", _retry_after(response))
        if response.status_code >= 400:
            raise ChatError(self._refused(response))
        try:
            return _content(response, schema)
        except ValueError as err:  # a healthy server wrote a bad answer: no backoff, the rate limiter spaces retries
            raise _Retry(str(err), retry_after=0.0, malformed=True) from None

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        with self._lock:  # reserve a start slot, then sleep outside the lock so threads queue in order
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.config.requests_per_s
        time.sleep(start - now)
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        return requests.request(
            method, self.config.base_url + path, headers=headers, timeout=self.config.timeout_s, **kwargs
        )

    def _refused(self, response: requests.Response) -> str:
        status, c, e = response.status_code, self.config, self.config.ENDPOINT
        key_fix = f"check {e.api_key_var} (or the Secret behind {e.api_key_file_var}) and its access to {c.model}"
        fix = {
            401: key_fix,
            403: key_fix,
            404: f"check {e.base_url_var}={c.base_url!r} ends in /v1 and {e.model_var}={c.model!r} exists there",
            400: f"check that {e.model_var}={c.model!r} supports response_format json_schema",
        }.get(status, "see the server's message")
        return f"{c.base_url} refused the request with HTTP {status} ({self._snippet(response)}); {fix}"

    def _snippet(self, response: requests.Response) -> str:
        # Servers sometimes echo the key they rejected; it must not reach logs or exceptions.
        text = " ".join(response.text.split())[:200]
        return text.replace(self.config.api_key, "***") if self.config.api_key else text


def _content(response: requests.Response, schema: dict) -> dict:
    """The assistant message's content as JSON that fits `schema`; ValueError says what is wrong."""
    try:
        message = response.json()["choices"][0]["message"]
        content = message.get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("the response is not a chat completion (no choices[0].message)") from None
    if message.get("refusal"):
        raise ValueError(f"the model refused: {str(message['refusal'])[:120]!r}")
    try:
        data = json.loads(content)
        jsonschema.validate(data, schema)
    except ValueError:
        raise ValueError(f"the content is not JSON: {content[:80]!r}") from None
    except jsonschema.ValidationError as err:
        raise ValueError(f"the content does not match the schema: {err.message[:160]}") from None
    return data


def _parsed(data: dict, parse: Callable[[dict], T]) -> T:
    try:
        return parse(data)
    except ValueError as err:  # fits the schema, but the caller cannot use it: as malformed as bad JSON
        raise _Retry(str(err), retry_after=0.0, malformed=True) from None


def _store(path: Path, data: Any) -> None:
    # Temp file + os.replace: a crash never leaves a half-written entry.
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(data, tmp)
    os.replace(tmp.name, path)


def _retry_after(response: requests.Response) -> float | None:
    # Seconds, as API servers send it; an absent or unreadable value (e.g. an HTTP date) leaves it to the backoff.
    with contextlib.suppress(ValueError):
        return max(0.0, float(response.headers.get("Retry-After", "")))
    return None
