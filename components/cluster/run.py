"""Run one TrainJob to its end: create it, stream its pods' logs, wait for a final condition, clean it up.

    run_to_completion(config, build_trainjob(config, RUN_DIR, DATASET, namespace="team-a"), out=sys.stderr)

It raises TrainJobError when the job fails or does not finish within `timeout_s`, and deletes the job per
`TrainJobConfig.cleanup`: a job still running when the launcher gives up (timeout, SIGTERM from a terminated
pipeline run, an API error) is always deleted unless cleanup is "never", so it cannot hold GPUs unattended.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any, TextIO

from components.cluster.kube import TrainJobError, current_namespace, load_api_client
from components.cluster.trainjob_config import TrainJobConfig
from components.cluster.trainjob_spec import JOBSET_NAME_LABEL, RUN_DIR_ANNOTATION
from components.cluster.watch import TrainJobWatch

LOG_JOIN_S = 15.0  # how long to wait for the log streams to drain once the job has finished
RootCause = Callable[[Iterable[str]], "str | None"]  # picks the line that explains a failure from the pods' lines


def should_delete(cleanup: str, finished: bool, succeeded: bool) -> bool:
    """Whether the launcher deletes the job under cleanup policy `cleanup` (TrainJobConfig.cleanup)."""
    if cleanup == "never":
        return False
    if not finished:  # we stop watching a job that may still run and hold GPUs
        return True
    return cleanup == "always" or succeeded


@contextmanager
def sigterm_raises():
    """A terminated pipeline run sends SIGTERM: turn it into an exception so the job gets cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise TrainJobError(f"stopped by {signal.Signals(signum).name} while waiting for the TrainJob")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_to_completion(
    config: TrainJobConfig,
    body: dict[str, Any],
    *,
    api_client=None,
    out: TextIO | None = None,
    root_cause: RootCause | None = None,
) -> None:
    """Create the TrainJob `body` (a `build_trainjob` manifest for `config`), stream its pods' logs to `out`
    (stderr by default) and wait until it completes. When it fails or times out, the TrainJobError names the
    reason, the line `root_cause` picks from the pods' last lines, the run dir and those last lines."""
    out = out or sys.stderr
    metadata = body["metadata"]
    namespace, name = metadata.get("namespace") or current_namespace(), metadata["name"]
    watch = TrainJobWatch(api_client or load_api_client(), namespace, name, config, out)
    watch.create(body)

    final = None
    try:
        with sigterm_raises():
            final = watch.wait(time.monotonic() + config.timeout_s)
    finally:
        watch.logs.join(LOG_JOIN_S if final else 1.0)
        succeeded = bool(final) and final["type"] == "Complete"
        deleted = should_delete(config.cleanup, final is not None, succeeded)
        if deleted:
            watch.delete()
    if succeeded:
        return

    kept = (
        "it was deleted"
        if deleted
        else f"it was kept: kubectl describe trainjob -n {namespace} {name}; kubectl get pods -n {namespace} "
        f"-l {JOBSET_NAME_LABEL}={name}"
    )
    if final is None:
        head = f"{watch.where} did not finish within {config.timeout_s:g} s (last state: {watch.state}); {kept}"
    else:
        head = f"{watch.where} failed ({final.get('reason', 'no reason')}): {final.get('message', '')}; {kept}"
    cause = root_cause(watch.logs.kept_lines()) if root_cause else None
    lines = [head] + ([f"first rank error: {cause}"] if cause else [])
    if RUN_DIR_ANNOTATION in (metadata.get("annotations") or {}):
        lines.append(f"run dir: {metadata['annotations'][RUN_DIR_ANNOTATION]}")
    tail = watch.logs.last_lines()
    lines += ["last log lines:", *tail] if tail else ["no log lines were read from the trainer pods"]
    raise TrainJobError("\n".join(lines))
