"""A fake Kubernetes API server on 127.0.0.1 for the TrainJob launcher's tests.

No cluster can run here, so this serves only what the launcher calls, and the tests reach it through a real
`kubernetes.client.ApiClient`: the client's request building, (de)serialization and error paths all run.

    POST   /apis/trainer.kubeflow.org/v1alpha1/namespaces/NS/trainjobs          create
    GET    /apis/trainer.kubeflow.org/v1alpha1/namespaces/NS/trainjobs/NAME     get (status from a controller)
    DELETE /apis/trainer.kubeflow.org/v1alpha1/namespaces/NS/trainjobs/NAME     delete
    GET    /api/v1/namespaces/NS/pods?labelSelector=...                          list pods
    GET    /api/v1/namespaces/NS/pods/POD/log?container=node&follow=true         read (follow) a pod's log

Two stand-ins for the Trainer controller drive a job: `ScriptedController` replays a list of statuses (one per
GET), `ProcessController` runs the TrainJob's trainer command as a local process with the PET_* env that the
torch runtime plugin injects, so the real worker trains under the real torchrun.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_http import send_json

JOBS = re.compile(r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<ns>[^/]+)/trainjobs(?:/(?P<name>[^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log$")


def condition(type_: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-25T10:00:00Z",
    }


def jobs_status(active: int = 0, succeeded: int = 0, failed: int = 0) -> list[dict[str, Any]]:
    return [
        {"name": "node", "active": active, "ready": active, "succeeded": succeeded, "failed": failed, "suspended": 0}
    ]


RUNNING = {"jobsStatus": jobs_status(active=1)}
COMPLETE = {
    "conditions": [condition("Complete", "JobsCompleted", "jobset completed")],
    "jobsStatus": jobs_status(succeeded=1),
}


def pod(job: str, index: int, phase: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-node-0-{index}-x7k2p",
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": job,
                "jobset.sigs.k8s.io/replicatedjob-name": "node",
                "batch.kubernetes.io/job-completion-index": str(index),
            },
        },
        "status": {"phase": phase},
    }


class ScriptedController:
    """Each GET of the job returns the next status of `statuses` (the last one repeats).

    Pods appear from GET number `pods_from` on; `on_get(n)` runs at GET n (e.g. to write what the pods would).
    """

    def __init__(
        self,
        statuses: list[dict],
        logs: dict[int, str] | None = None,
        pods_from: int = 1,
        on_get: Callable[[int], None] | None = None,
    ):
        self.statuses, self.logs, self.pods_from, self.on_get = statuses, logs or {0: ""}, pods_from, on_get
        self.gets = 0
        self.job: dict | None = None

    def created(self, job: dict) -> None:
        self.job = job

    def status(self) -> dict:
        n, self.gets = self.gets, self.gets + 1
        if self.on_get:
            self.on_get(n)
        return self.statuses[min(n, len(self.statuses) - 1)]

    def pods(self) -> list[dict]:
        if self.gets <= self.pods_from:
            return []
        phase = "Failed" if any(c["type"] == "Failed" for c in self.statuses[-1].get("conditions", [])) else "Running"
        return [pod(self.job["metadata"]["name"], i, phase) for i in sorted(self.logs)]

    def log_chunks(self, pod_name: str):
        index = int(pod_name.split("-node-0-")[1].split("-")[0])
        yield self.logs[index].encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessController:
    """Runs the job's trainer command for one node locally, with the env the torch runtime plugin injects."""

    def __init__(self, log_dir: Path):
        self.log_path = Path(log_dir) / "node-0.log"
        self.proc: subprocess.Popen | None = None
        self.job: dict | None = None

    def created(self, job: dict) -> None:
        self.job = job
        trainer = job["spec"]["trainer"]
        assert trainer["numNodes"] == 1, "this stand-in runs a single node"
        command = trainer["command"] + trainer["args"]
        if command[0] == "torchrun":  # the image has the console script; here the venv may not be on PATH
            command = [sys.executable, "-m", "torch.distributed.run"] + command[1:]
        env = {
            **os.environ,
            **{e["name"]: e["value"] for e in trainer["env"]},
            "PET_NNODES": "1",
            "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
            "PET_NODE_RANK": "0",
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(_free_port()),
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def status(self) -> dict:
        code = self.proc.poll()
        if code is None:
            return RUNNING
        if code == 0:
            return COMPLETE
        return {
            "conditions": [condition("Failed", "FailedJobs", f"node-0 exited with code {code}")],
            "jobsStatus": jobs_status(failed=1),
        }

    def pods(self) -> list[dict]:
        code = self.proc.poll()
        return [
            pod(self.job["metadata"]["name"], 0, "Running" if code is None else "Succeeded" if code == 0 else "Failed")
        ]

    def log_chunks(self, pod_name: str):
        """Follow the log file until the process has exited and everything is sent."""
        with open(self.log_path, "rb") as log:
            while True:
                chunk = log.read()
                if chunk:
                    yield chunk
                elif self.proc.poll() is not None:
                    yield log.read()
                    return
                else:
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up (e.g. on SIGTERM) is fine
            super().handle_error(request, client_address)


class FakeKubeAPI:
    """The HTTP server. `requests` records (method, path, query, body); `errors[op]` queues HTTP error codes
    returned before normal answers, for op in create | get | delete | pods | log."""

    def __init__(self, controller):
        self.controller = controller
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.errors: dict[str, deque[int]] = defaultdict(deque)
        self.jobs: dict[str, dict] = {}
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def api_client(self):
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def calls(self, method: str, pattern: str = "") -> list[tuple]:
        return [r for r in self.requests if r[0] == method and pattern in r[1]]

    def __enter__(self) -> FakeKubeAPI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code: int, payload: Any) -> None:
                send_json(self, code, payload)

            def _error(self, op: str) -> bool:
                if not fake.errors[op]:
                    return False
                code = fake.errors[op].popleft()
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "code": code,
                        "message": f"injected {code} for {op}",
                        "reason": "Injected",
                    },
                )
                return True

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((method, url.path, query, body))
                if (m := JOBS.match(url.path)) and method == "POST" and not m["name"]:
                    if not self._error("create"):
                        job = {**body, "metadata": {**body["metadata"], "namespace": m["ns"], "uid": "u-1"}}
                        fake.jobs[job["metadata"]["name"]] = job
                        fake.controller.created(job)
                        self._send(201, job)
                elif (m := JOBS.match(url.path)) and m["name"] and method in ("GET", "DELETE"):
                    op = "get" if method == "GET" else "delete"
                    if self._error(op):
                        return
                    if m["name"] not in fake.jobs:
                        self._send(
                            404,
                            {
                                "kind": "Status",
                                "code": 404,
                                "reason": "NotFound",
                                "message": f'trainjobs "{m["name"]}" not found',
                            },
                        )
                    elif method == "GET":
                        self._send(200, {**fake.jobs[m["name"]], "status": fake.controller.status()})
                    else:
                        fake.jobs.pop(m["name"])
                        self._send(200, {"kind": "Status", "status": "Success"})
                elif PODS.match(url.path) and method == "GET":
                    if not self._error("pods"):
                        self._send(
                            200,
                            {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": fake.controller.pods()},
                        )
                elif (m := LOG.match(url.path)) and method == "GET":
                    if self._error("log"):
                        return
                    # No Content-Length: the body ends when the connection closes, as a followed log does.
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    for chunk in fake.controller.log_chunks(m["pod"]):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                else:
                    self._send(404, {"kind": "Status", "code": 404, "message": f"no route {method} {url.path}"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        if hasattr(self.controller, "stop"):
            self.controller.stop()
