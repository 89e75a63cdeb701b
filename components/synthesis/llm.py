"""Dialogue text from an OpenAI-compatible chat-completions endpoint, as the paper does with GPT-4o.

The template grammar (text.py) stays the offline default; this writer is the opt-in alternative:

    writer = ChatDialogueWriter(LLMConfig.from_env(cache_dir=Path("llm-cache")))
    writer.check()                                   # fail before any shard starts
    user_text, response_text = writer.write("travel", "angry", "apologetic", seed=7)

The transport (configuration from OMNI_LLM_*, rate limit, retries, refusals, cache) is components/chat.py, shared
with the empathy judge; this module holds what is particular to dialogues: the prompt, the schema and the checks
that make a text speakable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from tqdm import tqdm

from components.chat import ChatClient, ChatConfig, ChatEndpoint, ChatError
from components.contracts import DOMAINS, RESPONSE_EMOTIONS, USER_EMOTIONS

# The name callers (and omni/cli.py's user-facing errors) import; every chat-endpoint failure is one.
LLMError = ChatError

USER_WORDS, RESPONSE_WORDS = (5, 25), (10, 40)  # inclusive word-count bounds per turn
# maxLength is a backstop against run-on output (~9 characters a word); the word bounds are the real limit.
DIALOGUE_SCHEMA: dict = {
    "type": "object",
    "required": ["user_text", "response_text"],
    "additionalProperties": False,
    "properties": {
        "user_text": {"type": "string", "maxLength": 240},
        "response_text": {"type": "string", "maxLength": 400},
    },
}
_SYSTEM_PROMPT = (
    "You write short spoken dialogues for an emotional speech dataset. Each has one user turn and one "
    "assistant reply; a text-to-speech engine reads both aloud. Answer only with the requested JSON."
)
_USER_PROMPT = """Domain: {domain}. User emotion: {user_emotion}. Reply emotion: {response_emotion}.
Rules:
- user_text: the user speaking in the first person about something in the {domain} domain, clearly {user_emotion}, \
{user_words[0]}-{user_words[1]} words of natural spoken English.
- response_text: the assistant's empathetic reply, {response_words[0]}-{response_words[1]} words, referring back to \
what the user said, spoken in a {response_emotion} tone.
- Plain ASCII only: letters, digits, spaces and ordinary punctuation; no emoji, markup, lists or stage directions."""
# What espeak-ng reads as words: emoji, markup and stage directions ("*sighs*") would be spoken or mangled.
_SPEAKABLE = re.compile(r"[A-Za-z0-9 .,!?'\";:()$%&/-]+")


@dataclass
class LLMConfig(ChatConfig):
    """The dialogue writer's endpoint, read from OMNI_LLM_BASE_URL, OMNI_LLM_MODEL, OMNI_LLM_API_KEY(_FILE)."""

    ENDPOINT: ClassVar[ChatEndpoint] = ChatEndpoint(
        "OMNI_LLM", "the LLM dialogue writer", answer="dialogue", fallback="use the template grammar"
    )
    temperature: float = 0.8  # varied dialogues; the seed in each request keeps them reproducible


class ChatDialogueWriter:
    """Writes (user_text, response_text) with a chat model; safe to share between threads."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self._client = ChatClient(config)

    def write(self, domain: str, user_emotion: str, response_emotion: str, seed: int) -> tuple[str, str]:
        """One validated dialogue; the same arguments (and model, temperature) hit the cache after the first call."""
        for name, value, allowed in (
            ("domain", domain, DOMAINS),
            ("user_emotion", user_emotion, USER_EMOTIONS),
            ("response_emotion", response_emotion, RESPONSE_EMOTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {allowed} (components/contracts.py)")
        prompt = _USER_PROMPT.format(
            domain=domain,
            user_emotion=user_emotion,
            response_emotion=response_emotion,
            user_words=USER_WORDS,
            response_words=RESPONSE_WORDS,
        )
        messages = [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        return self._client.ask(
            messages,
            DIALOGUE_SCHEMA,
            _dialogue,
            name="dialogue",
            seed=seed,
            subject=f"{domain}/{user_emotion}->{response_emotion} (seed {seed})",
        )

    def write_many(
        self, requests: Sequence[tuple[str, str, str, int]], *, workers: int = 4, progress: bool = True
    ) -> list[tuple[str, str]]:
        """`write` for each (domain, user_emotion, response_emotion, seed), in order, from a thread pool: calls
        wait on the network, and the shared rate limit spaces them. A rerun after a failure finds the finished
        ones in the cache."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.write, *request) for request in requests]
            try:
                bar = tqdm(
                    futures, desc="writing dialogues (LLM)", unit="dialogue", disable=not progress, mininterval=2.0
                )
                return [future.result() for future in bar]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def check(self) -> None:
        """One cheap request (GET /models) that raises LLMError when the endpoint is unreachable or refuses the key."""
        self._client.check()


def _dialogue(data: dict) -> tuple[str, str]:
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
