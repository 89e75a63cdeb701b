"""An OpenAI-compatible /v1 on 127.0.0.1 for chat-client tests: scripted replies, a key check, every request logged.

with serve_chat(answer=lambda body: '{"score": 4, "reason": "kind"}', key="sk-test") as server:
    ...                                   # point the client at server.url; server.chat_requests() afterwards
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH, MODELS_PATH = "/v1/chat/completions", "/v1/models"


@dataclass
class Reply:
    """One scripted answer to a chat request."""

    status: int = 200
    content: str | None = None  # the assistant message content; None: the server's `answer` to the request
    headers: dict = field(default_factory=dict)
    body: str | None = None  # the raw HTTP body, overriding content


@dataclass
class FakeChatServer:
    """Pops scripted replies, then answers with `answer(request body)`; requires `key` as a bearer token."""

    answer: Callable[[dict], str]
    key: str | None
    url: str = ""
    script: list[Reply] = field(default_factory=list)
    models_status: int = 200
    seen: list = field(default_factory=list)  # (monotonic arrival, method, path, json body or None)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_requests(self) -> list:
        return [entry for entry in self.seen if entry[2] == CHAT_PATH]

    def reply(self, method: str, path: str, authorization: str | None, body: dict | None) -> tuple[Reply, str]:
        """The reply to one request, and the assistant content it carries."""
        if self.key and authorization != f"Bearer {self.key}":
            # Real servers echo part of the rejected key; the client must mask it.
            return Reply(401, body=json.dumps({"error": {"message": f"Incorrect API key: {authorization}"}})), ""
        if (method, path) == ("GET", MODELS_PATH):
            return Reply(self.models_status, body='{"data": [{"id": "judge"}]}'), ""
        if (method, path) != ("POST", CHAT_PATH):
            return Reply(404, body="no such route"), ""
        with self.lock:
            reply = self.script.pop(0) if self.script else Reply()
        return reply, self.answer(body) if reply.content is None else reply.content


@contextmanager
def serve_chat(answer: Callable[[dict], str], key: str | None) -> Iterator[FakeChatServer]:
    """A FakeChatServer listening on a free 127.0.0.1 port until the block ends."""
    fake = FakeChatServer(answer, key)

    class Handler(BaseHTTPRequestHandler):
        def setup(self):
            self.accepted = time.monotonic()  # before parsing, so arrival gaps show the client's spacing
            super().setup()

        def do_POST(self):
            self.handle_request(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

        def do_GET(self):
            self.handle_request(None)

        def handle_request(self, body: dict | None):
            with fake.lock:
                fake.seen.append((self.accepted, self.command, self.path, body))
            reply, content = fake.reply(self.command, self.path, self.headers.get("Authorization"), body)
            data = (
                reply.body or json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
            ).encode()
            self.send_response(reply.status)
            for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
