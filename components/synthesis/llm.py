"""Dialogue text from an OpenAI-compatible chat-completions endpoint, as the paper does with GPT-4o.

The template grammar (text.py) stays the offline default; this writer is the opt-in alternative:

    writer = ChatDialogueWriter(LLMConfig.from_env(cache_dir=Path("llm-cache")))
    writer.check()                                   # fail before any shard starts
    user_text, response_text = writer.write("travel", "angry", "apologetic", seed=7)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import requests
from tqdm import tqdm

from components.contracts import DOMAINS, RESPONSE_EMOTIONS, USER_EMOTIONS

BASE_URL_VAR, MODEL_VAR = "OMNI_LLM_BASE_URL", "OMNI_LLM_MODEL"
API_KEY_VAR, API_KEY_FILE_VAR = "OMNI_LLM_API_KEY", "OMNI_LLM_API_KEY_FILE"

USER_WORDS, RESPONSE_WORDS = (5, 25), (10, 40)   # inclusive word-count bounds per turn
# maxLength is a backstop against run-on output (~9 characters a word); the word bounds are the real limit.
DIALOGUE_SCHEMA: dict = {
    "type": "object", "required": ["user_text", "response_text"], "additionalProperties": False,
    "properties": {"user_text": {"type": "string", "maxLength": 240},
                   "response_text": {"type": "string", "maxLength": 400}},
}
_SYSTEM_PROMPT = ("You write short spoken dialogues for an emotional speech dataset. Each has one user turn and one "
                  "assistant reply; a text-to-speech engine reads both aloud. Answer only with the requested JSON.")
_USER_PROMPT = """Domain: {domain}. User emotion: {user_emotion}. Reply emotion: {response_emotion}.
Rules:
- user_text: the user speaking in the first person about something in the {domain} domain, clearly {user_emotion}, \
{user_words[0]}-{user_words[1]} words of natural spoken English.
- response_text: the assistant's empathetic reply, {response_words[0]}-{response_words[1]} words, referring back to \
what the user said, spoken in a {response_emotion} tone.
- Plain ASCII only: letters, digits, spaces and ordinary punctuation; no emoji, markup, lists or stage directions."""
MAX_DELAY_S = 60.0   # caps backoff and Retry-After alike, so a misbehaving server cannot stall a shard for long
# What espeak-ng reads as words: emoji, markup and stage directions ("*sighs*") would be spoken or mangled.
_SPEAKABLE = re.compile(r"[A-Za-z0-9 .,!?'\";:()$%&/-]+")

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """The endpoint is misconfigured, unreachable, refuses us, or gave no usable dialogue."""


class _Retry(Exception):
    """Worth another attempt: the endpoint was down or overloaded, or its dialogue was malformed."""

    def __init__(self, problem: str, retry_after: float | None = None, malformed: bool = False):
        super().__init__(f"malformed dialogue: {problem}" if malformed else problem)
        self.retry_after, self.malformed = retry_after, malformed


@dataclass
class LLMConfig:
    base_url: str                     # ends in /v1; /chat/completions and /models are appended
    model: str
    api_key: str = field(repr=False)  # never in a repr, log line or error message
    timeout_s: float = 30.0           # per request
    max_retries: int = 5              # extra attempts after the first, for transport errors and malformed content
    backoff_s: float = 1.0            # first retry delay; doubles per attempt, jittered, capped at MAX_DELAY_S
    requests_per_s: float = 2.0       # across all threads sharing one writer; separate processes each get this
    cache_dir: Path | None = None     # None: no cache, every call is a request
    temperature: float = 0.8

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")) or not self.model:
            raise LLMError(f"{BASE_URL_VAR}={self.base_url!r} must start with http:// or https:// (e.g. https://"
                           f"api.openai.com/v1) and {MODEL_VAR}={self.model!r} must name a model (e.g. gpt-4o)")
        if min(self.timeout_s, self.requests_per_s) <= 0 or min(self.max_retries, self.backoff_s) < 0:
            raise LLMError("LLMConfig: timeout_s and requests_per_s must be > 0, max_retries and backoff_s >= 0")
        self.cache_dir = None if self.cache_dir is None else Path(self.cache_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, cache_dir: Path | None = None) -> LLMConfig:
        """Read OMNI_LLM_BASE_URL, OMNI_LLM_MODEL and OMNI_LLM_API_KEY (or the file OMNI_LLM_API_KEY_FILE names)."""
        missing = [name for name in (BASE_URL_VAR, MODEL_VAR) if not environ.get(name, "").strip()]
        key, key_file = environ.get(API_KEY_VAR, "").strip(), environ.get(API_KEY_FILE_VAR, "").strip()
        if not key and key_file:
            try:
                key = Path(key_file).read_text().strip()
            except OSError as err:
                raise LLMError(f"{API_KEY_FILE_VAR}={key_file!r} cannot be read ({err.strerror}); point it at the "
                               f"file where the Kubernetes Secret is mounted, or set {API_KEY_VAR}") from None
            if not key:
                raise LLMError(f"{API_KEY_FILE_VAR}={key_file!r} is empty; put the API key in that Secret")
        elif not key:
            missing.append(f"{API_KEY_VAR} (or {API_KEY_FILE_VAR})")
        if missing:
            raise LLMError(f"the LLM dialogue writer needs {', '.join(missing)}: export them (e.g. {BASE_URL_VAR}="
                           f"https://api.openai.com/v1 {MODEL_VAR}=gpt-4o {API_KEY_VAR}=...), or in a cluster mount "
                           f"the key from a Kubernetes Secret as a file and set {API_KEY_FILE_VAR} to its path")
        return cls(environ[BASE_URL_VAR].strip(), environ[MODEL_VAR].strip(), key, cache_dir=cache_dir)


class ChatDialogueWriter:
    """Writes (user_text, response_text) with a chat model; safe to share between threads."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self._lock = threading.Lock()
        self._next_start = 0.0        # monotonic time the next request may start

    def write(self, domain: str, user_emotion: str, response_emotion: str, seed: int) -> tuple[str, str]:
        """One validated dialogue; the same arguments (and model, temperature) hit the cache after the first call."""
        for name, value, allowed in (("domain", domain, DOMAINS), ("user_emotion", user_emotion, USER_EMOTIONS),
                                     ("response_emotion", response_emotion, RESPONSE_EMOTIONS)):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {allowed} (components/contracts.py)")
        c = self.config
        prompt = _USER_PROMPT.format(domain=domain, user_emotion=user_emotion, response_emotion=response_emotion,
                                     user_words=USER_WORDS, response_words=RESPONSE_WORDS)
        messages = [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        request = {"model": c.model, "messages": messages, "temperature": c.temperature, "seed": seed}
        key = hashlib.sha256(json.dumps({**request, "schema": DIALOGUE_SCHEMA}, sort_keys=True,
                                        separators=(",", ":")).encode()).hexdigest()
        cache = None if c.cache_dir is None else c.cache_dir / key[:2] / f"{key}.json"
        if cache is not None:   # an absent or damaged entry falls through to a request, whose answer replaces it
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                data = json.loads(cache.read_text())
                return _check_texts(data["user_text"], data["response_text"])
        body = {**request, "response_format": {"type": "json_schema", "json_schema": {
            "name": "dialogue", "schema": DIALOGUE_SCHEMA, "strict": True}}}
        last, malformed = "", 0
        for attempt in range(c.max_retries + 1):
            try:
                # A seeded server would repeat a malformed answer, so each retry after one asks anew.
                dialogue = self._complete({**body, "seed": seed + malformed})
            except _Retry as err:
                last, malformed, delay = str(err), malformed + err.malformed, err.retry_after
                if delay is None:
                    delay = c.backoff_s * 2 ** attempt * random.uniform(0.5, 1.0)
            else:
                if cache is not None:   # temp file + os.replace: a crash never leaves a half-written entry
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    with tempfile.NamedTemporaryFile("w", dir=cache.parent, suffix=".tmp", delete=False) as tmp:
                        json.dump({"user_text": dialogue[0], "response_text": dialogue[1]}, tmp)
                    os.replace(tmp.name, cache)
                return dialogue
            if attempt < c.max_retries:
                log.warning("attempt %d: %s; retrying in %.2f s", attempt + 1, last, min(delay, MAX_DELAY_S))
                time.sleep(min(delay, MAX_DELAY_S))
        raise LLMError(f"{c.model} at {c.base_url} gave no usable dialogue for {domain}/{user_emotion}->"
                       f"{response_emotion} (seed {seed}) in {c.max_retries + 1} attempts; last: {last}. Check the "
                       "server's health and rate limits, raise LLMConfig.max_retries, or use the template grammar")

    def write_many(self, requests: Sequence[tuple[str, str, str, int]], *, workers: int = 4,
                   progress: bool = True) -> list[tuple[str, str]]:
        """`write` for each (domain, user_emotion, response_emotion, seed), in order, from a thread pool: calls
        wait on the network, and the shared rate limit spaces them. A rerun after a failure finds the finished
        ones in the cache."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.write, *request) for request in requests]
            try:
                bar = tqdm(futures, desc="writing dialogues (LLM)", unit="dialogue", disable=not progress,
                           mininterval=2.0)
                return [future.result() for future in bar]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def check(self) -> None:
        """One cheap request (GET /models) that raises LLMError when the endpoint is unreachable or refuses the key."""
        try:
            response = self._request("GET", "/models")
        except requests.RequestException as err:
            raise LLMError(f"cannot reach {BASE_URL_VAR}={self.config.base_url!r} ({type(err).__name__}); check "
                           "the URL, that the server is up, and that this pod may reach it") from None
        # Some OpenAI-compatible servers have no /models; a 404 still proves the server is there.
        if response.status_code >= 400 and response.status_code != 404:
            raise LLMError(self._refused(response))

    def _complete(self, body: dict) -> tuple[str, str]:
        try:
            response = self._request("POST", "/chat/completions", json=body)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            raise _Retry(f"cannot reach {self.config.base_url} ({type(err).__name__})") from None
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}: {self._snippet(response)}", _retry_after(response))
        if response.status_code >= 400:
            raise LLMError(self._refused(response))
        try:
            return _parse_dialogue(response)
        except ValueError as err:   # a healthy server wrote a bad dialogue: no backoff, the rate limiter spaces retries
            raise _Retry(str(err), retry_after=0.0, malformed=True) from None

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        with self._lock:              # reserve a start slot, then sleep outside the lock so threads queue in order
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.config.requests_per_s
        time.sleep(start - now)
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        return requests.request(method, self.config.base_url + path, headers=headers,
                                timeout=self.config.timeout_s, **kwargs)

    def _refused(self, response: requests.Response) -> str:
        status, c = response.status_code, self.config
        key_fix = f"check {API_KEY_VAR} (or the Secret behind {API_KEY_FILE_VAR}) and its access to {c.model}"
        fix = {401: key_fix, 403: key_fix,
               404: f"check {BASE_URL_VAR}={c.base_url!r} ends in /v1 and {MODEL_VAR}={c.model!r} exists there",
               400: f"check that {MODEL_VAR}={c.model!r} supports response_format json_schema",
               }.get(status, "see the server's message")
        return f"{c.base_url} refused the request with HTTP {status} ({self._snippet(response)}); {fix}"

    def _snippet(self, response: requests.Response) -> str:
        # Servers sometimes echo the key they rejected; it must not reach logs or exceptions.
        text = " ".join(response.text.split())[:200]
        return text.replace(self.config.api_key, "***") if self.config.api_key else text


def _parse_dialogue(response: requests.Response) -> tuple[str, str]:
    try:
        message = response.json()["choices"][0]["message"]
        content = message.get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("the response is not a chat completion (no choices[0].message)") from None
    if message.get("refusal"):
        raise ValueError(f"the model refused: {str(message['refusal'])[:120]!r}")
    try:
        data = json.loads(content)
        jsonschema.validate(data, DIALOGUE_SCHEMA)
    except ValueError:
        raise ValueError(f"the content is not JSON: {content[:80]!r}") from None
    except jsonschema.ValidationError as err:
        raise ValueError(f"the content does not match DIALOGUE_SCHEMA: {err.message[:160]}") from None
    return _check_texts(data["user_text"], data["response_text"])


def _check_texts(user_text: str, response_text: str) -> tuple[str, str]:
    texts = (" ".join(user_text.split()), " ".join(response_text.split()))
    for name, text, (low, high) in zip(("user_text", "response_text"), texts, (USER_WORDS, RESPONSE_WORDS)):
        if not any(ch.isalpha() for ch in text):
            raise ValueError(f"{name} has no letters: {text[:80]!r}")
        if not _SPEAKABLE.fullmatch(text):
            bad = "".join(sorted(set(_SPEAKABLE.sub("", text))))
            raise ValueError(f"{name} has characters text-to-speech cannot read: {bad[:20]!r}")
        if not low <= len(text.split()) <= high:
            raise ValueError(f"{name} has {len(text.split())} words, not {low}-{high}: {text[:80]!r}")
    return texts


def _retry_after(response: requests.Response) -> float | None:
    # Seconds, as API servers send it; an absent or unreadable value (e.g. an HTTP date) leaves it to the backoff.
    with contextlib.suppress(ValueError):
        return max(0.0, float(response.headers.get("Retry-After", "")))
    return None
