"""A Prometheus HTTP API on 127.0.0.1 for the metrics window's tests: /api/v1/query answered from a function of the
query, every query recorded.

    with serve_prometheus() as prometheus:
        prometheus.answers = lambda query: [({"pod": "a", "outcome": "error"}, 3)]   # (labels, value) rows
        ...                                                                         # point PrometheusSource at .url
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from components.contracts import METRIC_REQUESTS, REPLY_SECONDS_BUCKETS


class FakePrometheus:
    """/api/v1/query answering from `self.answers` (called with the query), recording every query it gets."""

    def __init__(self):
        self.queries: list[str] = []
        self.answers = lambda query: []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
                fake.queries.append(query)
                answer = fake.answers(query)
                if isinstance(answer, dict):  # a whole body, e.g. an error
                    body = answer
                else:
                    result = [{"metric": labels, "value": [time.time(), str(value)]} for labels, value in answer]
                    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
                payload = json.dumps(body).encode()
                self.send_response(200 if body.get("status") == "success" else 400)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serve_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    try:
        yield fake
    finally:
        fake.close()


def per_pod_answers(**per_pod: tuple[int, int]):
    """Answers for {pod: (requests, errors)}: the requests query by outcome, the latency query by le (all 0.2 s)."""

    def answer(query):
        rows = []
        for pod, (requests, errors) in per_pod.items():
            labels = {"instance": f"{pod}:8002", "pod": pod}
            if query.startswith(f"sum by (instance, pod, outcome, reason) ({METRIC_REQUESTS}"):
                rows += [
                    ({**labels, "outcome": "success"}, requests - errors),
                    ({**labels, "outcome": "error"}, errors),
                ]
            else:
                rows += [
                    ({**labels, "le": "+Inf" if le == math.inf else str(le)}, (requests - errors) * (le >= 0.2))
                    for le in (*REPLY_SECONDS_BUCKETS, math.inf)
                ]
        return rows

    return answer
