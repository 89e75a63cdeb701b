"""One TrainJob through the Kubernetes API: create it, poll its conditions until a final one, delete it.

Its conditions decide the outcome: `Complete` or `Failed` with status "True" end the wait (reason and message
kept), `Suspended` means queued (e.g. by Kueue) or paused. A few transient API errors in a row (an API server
restart) are retried; the trainer's progress (`status.trainerStatus`) is reported when it changes.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from components.cluster.kube import TrainJobError, api_error, is_transient
from components.cluster.logs import PodLogs
from components.cluster.trainjob_config import TrainJobConfig
from components.cluster.trainjob_spec import GROUP, PLURAL, VERSION

MAX_TRANSIENT_ERRORS = 6  # consecutive failed polls before the launcher gives up on the API server


class TrainJobWatch:
    """One TrainJob through the Kubernetes API: create, poll until a final condition, delete."""

    def __init__(self, api_client, namespace: str, name: str, config: TrainJobConfig, out: TextIO):
        from kubernetes import client

        self.custom, self.core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
        self.namespace, self.name, self.config = namespace, name, config
        self.logs = PodLogs(self.core, namespace, name, config.log_tail_lines, out)
        self.state, self.progress = "created", None

    @property
    def where(self) -> str:
        return f"TrainJob {self.namespace}/{self.name}"

    def say(self, message: str) -> None:
        self.logs.write(f"[trainjob] {message}")

    def create(self, body: dict[str, Any]) -> None:
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        except Exception as error:
            raise api_error(f"creating {self.where}", error, self.namespace) from None
        trainer = body["spec"]["trainer"]
        self.say(
            f"created {self.where}: runtime {body['spec']['runtimeRef']['name']}, "
            f"{trainer['numNodes']} node(s) x {trainer['numProcPerNode']} rank(s)"
        )

    def wait(self, deadline: float) -> dict[str, Any] | None:
        """The final condition (type Complete or Failed), or None when the deadline passes first."""
        errors = 0
        while True:
            try:
                job = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
                self.logs.poll()
                errors = 0
            except Exception as error:
                if getattr(error, "status", None) == 404:
                    raise TrainJobError(f"{self.where} disappeared while running (deleted by someone else?)") from None
                errors += 1
                if not is_transient(error) or errors > MAX_TRANSIENT_ERRORS:
                    raise api_error(f"watching {self.where}", error, self.namespace) from None
                self.say(f"API error {errors}/{MAX_TRANSIENT_ERRORS}, retrying: {error}")
            else:
                final = self._observe(job.get("status") or {})
                if final:
                    return final
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.config.poll_interval_s)

    def _observe(self, status: dict[str, Any]) -> dict[str, Any] | None:
        true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
        final = true.get("Failed") or true.get("Complete")
        if final:
            state = final["type"].lower()
        elif "Suspended" in true:
            state = f"suspended ({true['Suspended'].get('reason', '')}: queued or paused)"
        else:
            active = sum(j.get("active", 0) for j in status.get("jobsStatus") or [])
            state = "running" if active else "starting"
        if state != self.state:
            self.state = state
            self.say(f"state: {state}")
        trainer = status.get("trainerStatus") or {}
        if trainer.get("progressPercentage") is not None and trainer["progressPercentage"] != self.progress:
            self.progress = trainer["progressPercentage"]
            eta = trainer.get("estimatedRemainingSeconds")
            self.say(f"progress: {self.progress}%" + (f", about {eta} s left" if eta is not None else ""))
        return final

    def delete(self) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, propagation_policy="Background"
            )
            self.say(f"deleted {self.where}")
        except Exception as error:  # never hide the training outcome behind a clean-up failure
            if getattr(error, "status", None) != 404:
                self.say(
                    f"could not delete {self.where}: {error}; delete it by hand: "
                    f"kubectl delete trainjob -n {self.namespace} {self.name}"
                )
