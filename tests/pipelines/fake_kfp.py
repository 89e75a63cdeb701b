"""A fake Kubeflow Pipelines REST API (v2beta1) on 127.0.0.1: the few endpoints kfp.Client calls to submit.

No KFP server can run here, so the tests drive the real kfp.Client against this one and read back what it
sent. `requests` records (method, path, query, body), `authorization` each request's Authorization header;
`fail[path]` queues HTTP error codes for a path.

    GET  /apis/v2beta1/healthz           multi_user: false
    GET  /apis/v2beta1/experiments       filter by display_name (kfp's create_experiment looks first)
    POST /apis/v2beta1/experiments
    POST /apis/v2beta1/runs
    POST /apis/v2beta1/recurringruns
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_http import send_json


class FakeKFP:
    def __init__(self):
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.authorization: list[str | None] = []
        self.experiments: list[dict[str, Any]] = []
        self.fail: dict[str, deque[int]] = defaultdict(deque)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def bodies(self, method: str, path: str) -> list[Any]:
        return [body for m, p, _, body in self.requests if m == method and p == path]

    def _answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if self.fail[path]:
            code = self.fail[path].popleft()
            return code, {"error_message": f"injected {code}", "code": code}
        if (method, path) == ("GET", "/apis/v2beta1/healthz"):
            return 200, {"multi_user": False}
        if (method, path) == ("GET", "/apis/v2beta1/experiments"):
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else None
            found = [e for e in self.experiments if wanted in (None, e["display_name"])]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", "/apis/v2beta1/experiments"):
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments.append(experiment)
            return 200, experiment
        if (method, path) == ("POST", "/apis/v2beta1/runs"):
            return 200, {
                "run_id": "run-1",
                "display_name": body["display_name"],
                "experiment_id": body["experiment_id"],
                "state": "PENDING",
            }
        if (method, path) == ("POST", "/apis/v2beta1/recurringruns"):
            return 200, {
                "recurring_run_id": "rr-1",
                "display_name": body["display_name"],
                "experiment_id": body["experiment_id"],
                "status": "ENABLED",
            }
        return 404, {"error_message": f"no route {method} {path}", "code": 5}

    def __enter__(self) -> FakeKFP:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                query = parse_qs(url.query)
                fake.requests.append((method, url.path, query, body))
                fake.authorization.append(self.headers.get("Authorization"))
                code, payload = fake._answer(method, url.path, query, body)
                send_json(self, code, payload)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
