"""The TrainJob's pod logs: each trainer pod followed in a background thread as soon as it starts, its lines
written to one stream with the pod's node prefixed (`[node-1] ...`), its last lines kept for the error report."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TextIO

from components.cluster.trainjob_spec import JOBSET_NAME_LABEL, NODE_INDEX_LABEL, TRAINER_JOB


class PodLogs:
    """Follows the trainer pods' logs in background threads, prefixed by node, keeping each pod's last lines."""

    def __init__(self, core, namespace: str, job: str, tail_lines: int, out: TextIO):
        self.core, self.namespace, self.job, self.out = core, namespace, job, out
        self.tail_lines = tail_lines
        self.threads: dict[str, threading.Thread] = {}
        self.tails: dict[str, deque[str]] = {}
        self.labels: dict[str, str] = {}
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def poll(self) -> None:
        """Start following every trainer pod whose container has started and is not followed yet."""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOBSET_NAME_LABEL}={self.job}")
        for pod in sorted(pods.items, key=lambda p: p.metadata.name):
            name, phase = pod.metadata.name, pod.status.phase if pod.status else None
            if name in self.threads or phase not in ("Running", "Succeeded", "Failed"):
                continue  # a Pending pod has no log yet
            self.labels[name] = f"node-{(pod.metadata.labels or {}).get(NODE_INDEX_LABEL, name)}"
            self.tails[name] = deque(maxlen=self.tail_lines)
            thread = threading.Thread(target=self._follow, args=(name,), name=f"logs-{name}", daemon=True)
            self.threads[name] = thread
            thread.start()

    def _follow(self, pod: str) -> None:
        label, tail = self.labels[pod], self.tails[pod]
        try:
            response = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=TRAINER_JOB, follow=True, _preload_content=False
            )
            try:
                for raw in response:  # urllib3 yields the stream line by line
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    tail.append(line)
                    self.write(f"[{label}] {line}")
            finally:
                response.release_conn()
        except Exception as error:  # logs are best effort: the job's conditions decide the outcome
            self.write(f"[{label}] log stream stopped: {error}")

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for thread in self.threads.values():
            thread.join(max(0.0, end - time.monotonic()))

    def kept_lines(self) -> list[str]:
        """Each pod's last lines, as the pod wrote them."""
        return [line for tail in self.tails.values() for line in tail]

    def last_lines(self) -> list[str]:
        """Each pod's last lines, prefixed by its node."""
        return [f"[{self.labels[pod]}] {line}" for pod, tail in self.tails.items() for line in tail]
