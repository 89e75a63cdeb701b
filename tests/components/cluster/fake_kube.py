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

The serving deploy (components/cluster/serving_rollout.py) patches the Helm chart's Deployment:

    GET    /apis/apps/v1/namespaces/NS/deployments?labelSelector=...             list (equality selectors)
    GET    /apis/apps/v1/namespaces/NS/deployments/NAME                          get (status from the controller)
    PATCH  /apis/apps/v1/namespaces/NS/deployments/NAME                          JSON patch (RFC 6902, `test` too)
    GET    /api/v1/namespaces/NS/pods?labelSelector=...                          list the Deployment's pods

`RolloutController` stands in for the Deployment controller and the kubelet: a patch that changes the pod template
starts a rollout whose course `plan(version)` decides (the version read from the template's model-version
annotation): `completes(after=K)` or `stalls(reason, after=K)` with ProgressDeadlineExceeded and a crash-looping
new pod. Patches are applied for real; a failed `test` op, or a result that is not a valid Deployment, is refused
with 422 as the API server does. `rbac_verbs(requests)` names the (apiGroup, resource, verb) each request needs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

from components.training.ops import EXTENSIONS_DIR
from tests.fake_http import send_json

JOBS = re.compile(r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<ns>[^/]+)/trainjobs(?:/(?P<name>[^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log$")
DEPLOYMENTS = re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments(?:/(?P<name>[^/]+))?$")
JSON_PATCH = "application/json-patch+json"
VERSION_ANNOTATION = "empathy-omni.github.io/model-version"  # the chart's (templates/deployment.yaml)


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
            # The runtime's op cache (ClusterTrainingRuntime env): the op infra/setup.sh compiled, not a fresh build.
            "TORCH_EXTENSIONS_DIR": str(EXTENSIONS_DIR),
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


# --- Deployments: JSON patch and a rollout controller ---------------------------------------------------------


class PatchFailed(Exception):
    """A JSON patch the API server would refuse (422): a failed test, a missing path, or an invalid result."""


def apply_json_patch(doc: Any, ops: list[dict]) -> Any:
    """`doc` with the RFC 6902 ops add/remove/replace/test applied, all or nothing (a copy; `doc` is untouched)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        path = op.get("path", "")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts:
            raise PatchFailed(f"{op.get('op')} {path!r}: this fake patches below the root only")
        parent = doc
        for part in parts[:-1]:
            parent = _child(parent, part, path)
        last, kind = parts[-1], op.get("op")
        if kind == "test":
            if _child(parent, last, path) != op["value"]:
                raise PatchFailed(f"testing value {path} failed: test failed")
        elif kind == "add":
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if not 0 <= index <= len(parent):
                    raise PatchFailed(f"add {path}: index out of range")
                parent.insert(index, op["value"])
            else:
                parent[last] = op["value"]
        elif kind in ("remove", "replace"):
            _child(parent, last, path)  # must exist
            key = int(last) if isinstance(parent, list) else last
            if kind == "remove":
                del parent[key]
            else:
                parent[key] = op["value"]
        else:
            raise PatchFailed(f"op {kind!r} is not supported by this fake")
    return doc


def _child(node: Any, part: str, path: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchFailed(f"{path}: no such path in the object") from None


@dataclass(frozen=True)
class Rollout:
    """How a rollout to one pod template goes: after `after` reads of the Deployment it completes, or, with a
    `stall_reason`, the new pod crash-loops and the Deployment reports ProgressDeadlineExceeded."""

    after: int = 1
    stall_reason: str = ""  # the new pod's container waiting reason, e.g. CrashLoopBackOff
    stall_message: str = ""
    exit_reason: str = "Error"  # the new pod's last termination


def completes(after: int = 1) -> Rollout:
    return Rollout(after=after)


def stalls(reason: str = "CrashLoopBackOff", message: str = "", after: int = 1) -> Rollout:
    return Rollout(after=after, stall_reason=reason, stall_message=message)


def template_version(deployment: dict) -> int:
    return int(deployment["spec"]["template"]["metadata"].get("annotations", {}).get(VERSION_ANNOTATION, 0))


class _Tracked:
    """One Deployment and where its rollout stands."""

    def __init__(self, obj: dict):
        self.obj = obj
        self.serving = copy.deepcopy(obj["spec"]["template"])  # what the available (old) pods run
        self.reads = 0  # GETs that saw the current template, since it last changed
        self.lagging = False  # the template changed and no GET has shown it yet
        self.last_status: dict = {}


class RolloutController:
    """The Deployment controller and kubelet, stood in for. Deployments (e.g. the chart's, rendered) are stored as
    given; `plan(version)` decides how a rollout to a version goes (default: `completes()`).

    A template change is not seen at once: the first GET after it still shows the status of before with
    observedGeneration one behind (a stale ProgressDeadlineExceeded included), as a real controller's lag does.
    Then each GET is one step: `after` GETs show the rollout in progress, the next ones show it done or stalled.
    """

    def __init__(self, deployments: list[dict], plan: Callable[[int], Rollout] | None = None):
        self.plan = plan or (lambda version: completes())
        self.tracked: dict[tuple[str, str], _Tracked] = {}
        for n, given in enumerate(deployments):
            obj = copy.deepcopy(given)
            meta = obj["metadata"]
            meta.update(generation=1, resourceVersion=str(100 + n), uid=f"d-{n}")
            meta.setdefault("creationTimestamp", "2026-11-25T10:00:00Z")
            obj["spec"].setdefault("replicas", 1)  # the API server's default (the HPA sets it later)
            self.tracked[(meta["namespace"], meta["name"])] = _Tracked(obj)

    def deployment(self, namespace: str, name: str, *, step: bool = False) -> dict | None:
        """The Deployment with its status; `step`: a GET by name, which moves the rollout on."""
        tracked = self.tracked.get((namespace, name))
        if tracked is None:
            return None
        if tracked.lagging:
            status = {**tracked.last_status, "observedGeneration": tracked.obj["metadata"]["generation"] - 1}
            tracked.lagging = not step
        else:
            tracked.reads += step
            status = tracked.last_status = self._status(tracked)
        return {**copy.deepcopy(tracked.obj), "status": status}

    def listed(self, namespace: str) -> list[dict]:
        return [self.deployment(ns, name) for (ns, name) in self.tracked if ns == namespace]

    def patched(self, namespace: str, name: str, obj: dict) -> dict:
        """Store a patched Deployment (already valid); a changed template starts a rollout."""
        tracked = self.tracked[(namespace, name)]
        if not tracked.last_status:
            tracked.last_status = self._status(tracked)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if obj["spec"] != tracked.obj["spec"]:
            meta["generation"] += 1
        if obj["spec"]["template"] != tracked.obj["spec"]["template"]:
            tracked.reads, tracked.lagging = 0, True
        tracked.obj = obj
        return self.deployment(namespace, name)

    def _phase(self, tracked: _Tracked) -> tuple[str, Rollout]:
        """ "done", "rolling" or "stalled" for the current template, and the plan for it."""
        plan = self.plan(template_version(tracked.obj))
        if tracked.lagging or tracked.obj["spec"]["template"] == tracked.serving:
            return "done", plan
        if tracked.reads <= plan.after:
            return "rolling", plan
        if plan.stall_reason:
            return "stalled", plan
        tracked.serving = copy.deepcopy(tracked.obj["spec"]["template"])  # every pod runs it now
        return "done", plan

    def _status(self, tracked: _Tracked) -> dict:
        obj = tracked.obj
        wanted = obj["spec"].get("replicas", 1)
        phase, _ = self._phase(tracked)
        replica_set = f"{obj['metadata']['name']}-{_hash(obj['spec']['template'])}"
        if phase == "done":
            counts = {"replicas": wanted, "updatedReplicas": wanted}
            progressing = condition(
                "Progressing", "NewReplicaSetAvailable", f'ReplicaSet "{replica_set}" has successfully progressed.'
            )
        else:  # maxSurge 1, maxUnavailable 0: one new pod beside all the old ones
            counts = {"replicas": wanted + 1, "updatedReplicas": 1}
            progressing = condition("Progressing", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.')
            if phase == "stalled":
                progressing = condition(
                    "Progressing", "ProgressDeadlineExceeded", f'ReplicaSet "{replica_set}" has timed out progressing.'
                ) | {"status": "False"}
        return {
            "observedGeneration": obj["metadata"]["generation"],
            **counts,
            "readyReplicas": wanted,
            "availableReplicas": wanted,
            "conditions": [
                condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                progressing,
            ],
        }

    def pods(self, namespace: str) -> list[dict]:
        """Every tracked Deployment's pods: the available ones, and the new one while a rollout is under way."""
        pods = []
        for (ns, _), tracked in self.tracked.items():
            if ns != namespace:
                continue
            obj = tracked.obj
            phase, plan = self._phase(tracked)
            pods += [
                _deployment_pod(obj, tracked.serving, i, ready=True) for i in range(obj["spec"].get("replicas", 1))
            ]
            if phase != "done":
                trouble = plan if phase == "stalled" else None
                pods.append(_deployment_pod(obj, obj["spec"]["template"], 0, ready=False, trouble=trouble))
        return pods


def _hash(template: dict) -> str:
    """A stand-in for the pod-template-hash label."""
    return f"{zlib.crc32(json.dumps(template, sort_keys=True).encode()):08x}"


def _deployment_pod(deployment: dict, template: dict, index: int, ready: bool, trouble: Rollout | None = None) -> dict:
    name = f"{deployment['metadata']['name']}-{_hash(template)}-{index}"
    container = template["spec"]["containers"][0]["name"]
    if ready:
        state, last = {"running": {"startedAt": "2026-11-25T10:00:00Z"}}, {}
    elif trouble:
        state = {"waiting": {"reason": trouble.stall_reason, "message": trouble.stall_message}}
        last = {
            "terminated": {
                "reason": trouble.exit_reason,
                "exitCode": 1,
                "startedAt": "2026-11-25T10:01:00Z",
                "finishedAt": "2026-11-25T10:02:00Z",
            }
        }
    else:
        state, last = {"running": {"startedAt": "2026-11-25T10:01:00Z"}}, {}
    return {
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": {**template["metadata"]["labels"], "pod-template-hash": _hash(template)},
        },
        "status": {
            "phase": "Running",
            "conditions": [condition("Ready", "", "") | {"status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": container,
                    "ready": ready,
                    "restartCount": 0 if ready or not trouble else 4,
                    "image": "omni-triton",
                    "imageID": "",
                    "state": state,
                    "lastState": last,
                }
            ],
        },
    }


def selected(items: list[dict], label_selector: str) -> list[dict]:
    """The items whose labels match an equality-based label selector ("a=b,c=d"; "" matches all)."""
    terms = [t.split("=", 1) for t in label_selector.split(",") if t]
    return [i for i in items if all(i["metadata"].get("labels", {}).get(k) == v for k, v in terms)]


def rbac_verbs(requests: list[tuple]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) that each recorded request needs in RBAC terms."""
    verbs = set()
    for method, path, _, _ in requests:
        if m := DEPLOYMENTS.match(path):
            verb = {"GET": "get" if m["name"] else "list", "PATCH": "patch"}[method]
            verbs.add(("apps", "deployments", verb))
        elif PODS.match(path):
            verbs.add(("", "pods", "list"))
        elif LOG.match(path):
            verbs.add(("", "pods/log", "get"))
        elif m := JOBS.match(path):
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            verbs.add(("trainer.kubeflow.org", "trainjobs", verb))
        else:
            raise AssertionError(f"no RBAC mapping for {method} {path}")
    return verbs


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up (e.g. on SIGTERM) is fine
            super().handle_error(request, client_address)


class FakeKubeAPI:
    """The HTTP server. `requests` records (method, path, query, body); `errors[op]` queues HTTP error codes
    returned before normal answers, for op in create | get | delete | pods | log (TrainJobs and pods) and
    deployments | deployment | patch (list, get and patch Deployments). `controller` drives TrainJobs, `rollout`
    (a RolloutController) Deployments; either may be None."""

    def __init__(self, controller=None, *, rollout: RolloutController | None = None):
        self.controller = controller
        self.rollout = rollout
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
                self._status(code, "Injected", f"injected {code} for {op}")
                return True

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "code": code,
                        "reason": reason,
                        "message": message,
                    },
                )

            def _deployments(self, method: str, ns: str, name: str | None, query: dict, body: Any) -> None:
                if method == "GET" and not name:
                    if not self._error("deployments"):
                        items = selected(fake.rollout.listed(ns), query.get("labelSelector", [""])[0])
                        self._send(
                            200, {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": items}
                        )
                    return
                if method not in ("GET", "PATCH") or not name:
                    self._status(405, "MethodNotAllowed", f"this fake does not {method} deployments")
                    return
                if self._error("deployment" if method == "GET" else "patch"):
                    return
                current = fake.rollout.deployment(ns, name, step=method == "GET")
                if current is None:
                    self._status(404, "NotFound", f'deployments.apps "{name}" not found')
                elif method == "GET":
                    self._send(200, current)
                elif self.headers.get("Content-Type") != JSON_PATCH:
                    self._status(415, "UnsupportedMediaType", f"this fake takes {JSON_PATCH} only")
                else:
                    stored = {k: v for k, v in current.items() if k != "status"}
                    try:
                        result = apply_json_patch(stored, body)
                        kubernetes_validate.validate(result, "1.31", strict=True)
                    except PatchFailed as error:
                        self._status(422, "Invalid", str(error))
                    except kubernetes_validate.ValidationError as error:
                        self._status(422, "Invalid", f"Deployment.apps {name!r} is invalid: {error.message}")
                    else:
                        self._send(200, fake.rollout.patched(ns, name, result))

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
                elif (m := PODS.match(url.path)) and method == "GET":
                    if not self._error("pods"):
                        items = (fake.controller.pods() if fake.controller else []) + (
                            fake.rollout.pods(m["ns"]) if fake.rollout else []
                        )
                        items = selected(items, query.get("labelSelector", [""])[0])
                        self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                elif (m := DEPLOYMENTS.match(url.path)) and fake.rollout is not None:
                    self._deployments(method, m["ns"], m["name"], query, body)
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

            def do_PATCH(self):
                self._route("PATCH")

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default, in every test.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        if hasattr(self.controller, "stop"):
            self.controller.stop()
