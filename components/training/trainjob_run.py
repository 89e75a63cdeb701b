"""Run training as a Kubeflow Trainer v2 TrainJob and wait for it: create, stream logs, poll, clean up.

    result = train_on_cluster(DATA, OUT, TrainConfig(), TrainJobConfig(pvc="omni-shared", num_nodes=2))

`train_on_cluster` stages the dataset on the shared PVC, `run_trainjob` prepares the run dir there with the same
`prepare_run` as the local launcher (tokenizer + train_config.json), creates the TrainJob, follows its pods'
logs, and polls its conditions: `Complete` or `Failed` with status "True" end it (reason and message quoted),
`Suspended` means queued (e.g. by Kueue) or paused. It raises `TrainingError` when the job fails or does not
finish within `timeout_s`, and deletes the job per `TrainJobConfig.cleanup`: a job still running when the
launcher gives up (timeout, SIGTERM from a terminated pipeline run, an API error) is always deleted unless
cleanup is "never", so it cannot hold GPUs unattended.

The launcher's ServiceAccount needs, in the job's namespace: create/get/delete on trainjobs.trainer.kubeflow.org,
list on pods, get on pods/log (pipelines/rbac/trainjob-launcher.yaml). The kubernetes client is imported lazily.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from components.contracts import TRAIN_SUMMARY_FILE
from components.training.config import TrainConfig
from components.training.launch import TrainingError, TrainResult, first_rank_error, resume_point
from components.training.prepare import prepare_run
from components.training.trainjob import (
    GROUP,
    PLURAL,
    TRAIN_METRICS_PORT,
    TRAINER_JOB,
    VERSION,
    TrainJobConfig,
    build_trainjob,
    job_name,
)

JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"  # on every pod of the TrainJob's JobSet (named like the job)
NODE_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"  # the node rank of a trainer pod
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_MAX_TRANSIENT_ERRORS = 6  # consecutive failed polls before the launcher gives up on the API server
_LOG_JOIN_S = 15.0  # how long to wait for the log streams to drain once the job has finished
RBAC_HINT = (
    "the launcher's ServiceAccount needs create/get/delete on trainjobs.trainer.kubeflow.org, list on "
    "pods and get on pods/log in that namespace (pipelines/rbac/trainjob-launcher.yaml)"
)


def load_api_client():
    """A kubernetes ApiClient: in-cluster credentials in a pod, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            raise TrainingError(
                f"no Kubernetes credentials: not running in a pod and no usable kubeconfig "
                f"({error}); set KUBECONFIG or run inside the cluster"
            ) from None
    return client.ApiClient()


def current_namespace() -> str:
    """The namespace this pod runs in; outside a cluster, the kubeconfig context's (else "default")."""
    if SA_NAMESPACE_FILE.is_file():
        return SA_NAMESPACE_FILE.read_text().strip()
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts()
        return active["context"].get("namespace") or "default"
    except Exception:  # no kubeconfig: the API call will name the real problem
        return "default"


def _api_error(action: str, error: Exception, namespace: str) -> TrainingError:
    status = getattr(error, "status", None)
    detail = getattr(error, "reason", None) or str(error)
    try:
        detail = json.loads(getattr(error, "body", "") or "{}").get("message") or detail
    except (ValueError, AttributeError):
        pass
    hints = {
        401: "the API server refused the credentials",
        403: RBAC_HINT,
        404: "is Kubeflow Trainer v2 installed (CRD trainjobs.trainer.kubeflow.org, version v1alpha1)?",
    }
    hint = f"; {hints[status]}" if status in hints else ""
    return TrainingError(f"{action} in namespace {namespace!r} failed (HTTP {status}): {detail}{hint}")


def _should_delete(cleanup: str, finished: bool, succeeded: bool) -> bool:
    if cleanup == "never":
        return False
    if not finished:  # we stop watching a job that may still run and hold GPUs
        return True
    return cleanup == "always" or succeeded


@contextmanager
def _sigterm_raises():
    """A terminated pipeline run sends SIGTERM: turn it into an exception so the job gets cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise TrainingError(f"stopped by {signal.Signals(signum).name} while waiting for the TrainJob")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _PodLogs:
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

    def root_cause(self) -> str | None:
        """The first exception a rank printed (the other ranks then fail only on closed connections)."""
        return first_rank_error(line for tail in self.tails.values() for line in tail)

    def last_lines(self) -> list[str]:
        return [f"[{self.labels[pod]}] {line}" for pod, tail in self.tails.items() for line in tail]


class _TrainJobWatch:
    """One TrainJob through the Kubernetes API: create, poll until a final condition, delete."""

    def __init__(self, api_client, namespace: str, name: str, config: TrainJobConfig, out: TextIO):
        from kubernetes import client

        self.custom, self.core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
        self.namespace, self.name, self.config = namespace, name, config
        self.logs = _PodLogs(self.core, namespace, name, config.log_tail_lines, out)
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
            raise _api_error(f"creating {self.where}", error, self.namespace) from None
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
                status = getattr(error, "status", None)
                if status == 404:
                    raise TrainingError(f"{self.where} disappeared while running (deleted by someone else?)") from None
                transient = status in _TRANSIENT_STATUS or _is_connection_error(error)
                errors += 1
                if not transient or errors > _MAX_TRANSIENT_ERRORS:
                    raise _api_error(f"watching {self.where}", error, self.namespace) from None
                self.say(f"API error {errors}/{_MAX_TRANSIENT_ERRORS}, retrying: {error}")
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


def _is_connection_error(error: Exception) -> bool:
    import urllib3

    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError))


def run_trainjob(
    config: TrainJobConfig,
    run_dir: Path,
    dataset_dir: Path,
    train_config: TrainConfig | None = None,
    *,
    name: str | None = None,
    api_client=None,
    out: TextIO | None = None,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train on the cluster: `run_dir` and `dataset_dir` are on the shared PVC, mounted here at the same path.

    Prepares run_dir (tokenizer + train_config.json), creates the TrainJob, streams its pods' logs to `out`
    (stderr by default), waits for it and returns the same TrainResult as the local `train()`.
    """
    out = out or sys.stderr
    start = time.time()
    run_dir, dataset_dir = Path(run_dir), Path(dataset_dir)
    namespace = config.namespace or current_namespace()
    body = build_trainjob(config, run_dir, dataset_dir, name=name, namespace=namespace, resume=resume)  # validates
    name = body["metadata"]["name"]
    train_config = train_config or TrainConfig()
    # Stage 2 copies the stage-1 model and the units into the run dir, on the PVC, where every node reads them.
    prepare_run(dataset_dir, run_dir, train_config, init_model, speech_units, resume=resume)
    resume_point(run_dir, train_config, config.num_nodes * config.ranks_per_node, resume)
    watch = _TrainJobWatch(api_client or load_api_client(), namespace, name, config, out)
    watch.create(body)

    final = None
    try:
        with _sigterm_raises():
            final = watch.wait(time.monotonic() + config.timeout_s)
    finally:
        watch.logs.join(_LOG_JOIN_S if final else 1.0)
        succeeded = bool(final) and final["type"] == "Complete"
        deleted = _should_delete(config.cleanup, final is not None, succeeded)
        if deleted:
            watch.delete()

    if not succeeded:
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
        cause = watch.logs.root_cause()
        lines = [head] + ([f"first rank error: {cause}"] if cause else []) + [f"run dir: {run_dir}"]
        tail = watch.logs.last_lines()
        lines += ["last log lines:", *tail] if tail else ["no log lines were read from the trainer pods"]
        raise TrainingError("\n".join(lines))

    summary_path = run_dir / TRAIN_SUMMARY_FILE
    if not summary_path.is_file():
        raise TrainingError(
            f"{watch.where} completed but {summary_path} is missing: do the launcher and the "
            f"trainer pods mount the same PVC ({config.pvc}) at {config.mount_path}?"
        )
    return TrainResult.of_run(run_dir, start)


def train_on_cluster(
    dataset_dir: Path,
    out_dir: Path,
    train_config: TrainConfig | None = None,
    config: TrainJobConfig | None = None,
    *,
    api_client=None,
    out: TextIO | None = None,
    init_model: Path | None = None,
    speech_units: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Stage `dataset_dir` on the shared PVC, train there with a TrainJob, copy the run dir back to `out_dir`.

    The PVC must be mounted here at `config.mount_path` (the pipeline's train step mounts it). The staging
    directory MOUNT/runs/<job name> is removed after a successful run and kept after a failure, for inspection.
    """
    start = time.time()
    config = config or TrainJobConfig()
    train_config = train_config or TrainConfig()
    config.validate()
    if not config.gpus_per_node and not config.procs_per_node:  # CPU-only nodes: nproc ranks each, as locally
        config = dataclasses.replace(config, procs_per_node=train_config.nproc)
    if not train_config.metrics_port:  # where the bootstrap's ServiceMonitor scrapes rank 0
        train_config = dataclasses.replace(train_config, metrics_port=TRAIN_METRICS_PORT)
    mount = Path(config.mount_path)
    if not mount.is_dir():
        raise TrainingError(
            f"{mount} does not exist here: the launcher must mount PVC {config.pvc!r} at the path "
            "the TrainJob pods use (pipeline: ClusterSettings.shared_pvc / shared_mount_path)"
        )
    name = job_name(config.name_prefix)
    stage = mount / "runs" / name
    shutil.copytree(dataset_dir, stage / "dataset")
    result = run_trainjob(
        config,
        stage / "run",
        stage / "dataset",
        train_config,
        name=name,
        api_client=api_client,
        out=out,
        init_model=init_model,
        speech_units=speech_units,
        resume=resume,
    )
    out_dir = Path(out_dir)
    shutil.copytree(stage / "run", out_dir, dirs_exist_ok=True)
    shutil.rmtree(stage, ignore_errors=True)
    # The job's name goes with the run's summary (and so to MLflow's stage run), for `omni lineage`.
    summary = {**result.summary, "trainjob": name}
    (out_dir / TRAIN_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult.of_run(out_dir, start, summary)
