"""The Helm release of charts/emotion-omni-triton as the deploy step meets it: the version its Deployment serves, a
move to another version, and the wait for Kubernetes' rolling update to finish.

    release = ServingRelease("serving", "omni")
    before = release.state()                      # ServingState: v3, s3://.../triton/3, 2 replicas, ...
    release.move_to(4, lineage_id="run-1/v4")     # one JSON patch of the pod template
    release.wait_rolled_out(1200)                 # VerificationFailed: stalled (with the pods' reasons) or too slow

Decision: a version moves by PATCHING what the chart owns, the Deployment's pod template (the triton container's
`--model-repository=<base>/<N>` arg and the annotations empathy-omni.github.io/model-version and
empathy-omni.github.io/model-repository), not by a `helm upgrade` through Helm's Go SDK (helm_python). Helm keeps
each release in a Secret of the release's namespace, so a step that upgrades releases needs read/write on every
Secret there (the object-store credentials and the Triton admin key live there too) and on every kind the chart
renders. A patch needs get/list/patch on Deployments and list on pods (pipelines/rbac/serving-deployer.yaml), and
the chart's rolling update (maxSurge 1, maxUnavailable 0, readiness = every model loaded) moves the pods one at a
time with no downtime.

The cost, for SREs: the release's values still say the installed model.version, so the next `helm upgrade` must
carry the served version (read from the model-version annotation), or it moves the pods back to the installed one;
the chart's README and NOTES.txt print the command. `--set model.version=N` is also how an SRE pins a version.

The patch carries JSON-patch `test` ops on the values this object last read, so when anyone changed them in between
(a helm upgrade, another deploy) the API server refuses the whole patch (HTTP 422) and nothing changes.
The kubernetes client is imported lazily.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from components.cluster.kube import TrainJobError, current_namespace, is_transient, load_api_client
from components.contracts import TRITON_HTTP_PORT, TRITON_METRICS_PORT
from components.deploy.errors import DeployError, VerificationFailed

CHART_NAME = "emotion-omni-triton"  # the chart's app.kubernetes.io/name (without nameOverride)
NAME_LABEL, INSTANCE_LABEL = "app.kubernetes.io/name", "app.kubernetes.io/instance"  # the chart's selector labels
CONTAINER = "triton"
REPOSITORY_FLAG = "--model-repository="
VERSION_ANNOTATION = "empathy-omni.github.io/model-version"
REPOSITORY_ANNOTATION = "empathy-omni.github.io/model-repository"
LINEAGE_ANNOTATION = "empathy-omni.github.io/lineage-id"  # set by the deploy step only; the chart never renders it
RBAC_FILE = "pipelines/rbac/serving-deployer.yaml"
MAX_PODS_DESCRIBED = 3  # a stalled rollout's message quotes this many not-ready pods


@dataclass
class ServingState:
    """What the release's Deployment serves, read from its pod template."""

    deployment: str
    namespace: str
    version: int
    repository_uri: str  # the --model-repository arg: <repository_base>/<version>
    repository_base: str  # where every published version lives
    replicas: int
    lineage_id: str = ""  # the lineage-id annotation of the last deploy step ("" after a helm install/upgrade)
    in_progress: str = ""  # what an unfinished rollout waits for; "" when every replica serves the template
    service_url: str = ""  # "" = the chart's Service: http://<deployment>.<namespace>.svc.cluster.local:8000
    metrics_url: str = ""  # "" = the Service's :8002/metrics
    container_index: int = 0  # where the patch writes: the triton container in the pod spec...
    arg_index: int = 0  # ...and its --model-repository arg

    def __post_init__(self) -> None:
        host = f"{self.deployment}.{self.namespace}.svc.cluster.local"
        self.service_url = self.service_url or f"http://{host}:{TRITON_HTTP_PORT}"
        self.metrics_url = self.metrics_url or f"http://{host}:{TRITON_METRICS_PORT}/metrics"


class ServingRelease:
    """One Helm release of emotion-omni-triton, found by the chart's selector labels in `namespace` ("" = this
    pod's namespace, else the kubeconfig context's)."""

    def __init__(self, namespace: str, release: str, api_client=None):
        from kubernetes import client

        self.namespace = namespace or current_namespace()
        self.release = release
        if api_client is None:
            try:
                api_client = load_api_client()
            except TrainJobError as error:  # the same credentials problem, raised as what a deploy raises
                raise DeployError(str(error)) from None
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self._known: ServingState | None = None  # what the last read or patch showed; the next patch tests it

    @property
    def selector(self) -> str:
        return f"{NAME_LABEL}={CHART_NAME},{INSTANCE_LABEL}={self.release}"

    def state(self) -> ServingState:
        """The version the release's Deployment serves now; DeployError when there is none or it cannot be read."""
        found = self._call("list Deployments", self.apps.list_namespaced_deployment, label_selector=self.selector)
        if not found.items:
            raise DeployError(
                f"release {self.release} has no {CHART_NAME} Deployment in namespace {self.namespace}: install the "
                f"chart (helm install {self.release} charts/{CHART_NAME} -n {self.namespace}) or pass the right "
                "release/namespace"
            )
        if len(found.items) > 1:
            names = ", ".join(sorted(d.metadata.name for d in found.items))
            raise DeployError(
                f"{len(found.items)} Deployments in namespace {self.namespace} carry {self.selector} ({names}); the "
                "chart renders one per release: delete the stray one, or deploy to a release that owns one"
            )
        self._known = _parse(found.items[0])
        return self._known

    def move_to(self, version: int, *, lineage_id: str = "") -> None:
        """Patch the pod template to serve `version` (Kubernetes then rolls the pods). The patch tests the values
        last read, so a concurrent change makes the API server refuse it (DeployError) and nothing changes."""
        known = self._known or self.state()
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DeployError(f"version={version!r}: registered versions are integers >= 1")
        uri = f"{known.repository_base}/{version}"
        pod = "/spec/template"
        arg = f"{pod}/spec/containers/{known.container_index}/args/{known.arg_index}"
        ops = [
            {"op": "test", "path": arg, "value": REPOSITORY_FLAG + known.repository_uri},
            {"op": "replace", "path": arg, "value": REPOSITORY_FLAG + uri},
        ]
        for key, old, new in (
            (VERSION_ANNOTATION, str(known.version), str(version)),
            (REPOSITORY_ANNOTATION, known.repository_uri, uri),
        ):
            path = f"{pod}/metadata/annotations/{_escape(key)}"
            ops += [{"op": "test", "path": path, "value": old}, {"op": "replace", "path": path, "value": new}]
        lineage = f"{pod}/metadata/annotations/{_escape(LINEAGE_ANNOTATION)}"
        if lineage_id:
            ops.append({"op": "add", "path": lineage, "value": lineage_id})  # add replaces an existing member
        elif known.lineage_id:  # a stale lineage id would name the wrong run
            ops.append({"op": "remove", "path": lineage})
        try:
            patched = self._call(
                "patch Deployment", self.apps.patch_namespaced_deployment, known.deployment, body=ops, refusable=True
            )
        except _Refused as refused:
            raise DeployError(
                f"Deployment {known.deployment} in namespace {self.namespace} changed since it was read (v"
                f"{known.version} at {known.repository_uri}), so the move to v{version} was refused and nothing "
                f"changed ({refused.detail}): someone else moved it (a helm upgrade, another deploy). Check "
                f"`kubectl -n {self.namespace} get deployment {known.deployment} -o yaml` and deploy again"
            ) from None
        self._known = _parse(patched)

    def wait_rolled_out(
        self,
        timeout_s: float,
        poll_s: float = 5.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Return once every replica runs the current pod template and is available; raise VerificationFailed
        when the Deployment reports ProgressDeadlineExceeded or `timeout_s` passes first."""
        name = (self._known or self.state()).deployment
        deadline = clock() + timeout_s
        while True:
            try:
                deployment = self._call("read Deployment", self.apps.read_namespaced_deployment, name)
            except _Transient:  # an API server restarting mid-rollout is no reason to roll back
                deployment = None
            if deployment is not None:
                done, waiting, stalled = rollout_progress(deployment)
                if done:
                    self._known = _parse(deployment)
                    return
                if stalled:
                    target = _annotation(deployment, VERSION_ANNOTATION)
                    raise VerificationFailed(
                        f"the rollout of {name} to v{target} stalled: {stalled}{self._pod_reasons(deployment)}"
                    )
            if clock() >= deadline:
                now = waiting if deployment is not None else "the API server did not answer"
                raise VerificationFailed(
                    f"the rollout of {name} did not finish within {timeout_s:g} s ({now})"
                    + (self._pod_reasons(deployment) if deployment is not None else "")
                )
            sleep(poll_s)

    def _pod_reasons(self, deployment) -> str:
        """Why the Deployment's not-ready pods are not ready, from their container states; "" when unknown."""
        labels = (deployment.spec.selector.match_labels or {}) if deployment.spec.selector else {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        try:
            pods = self._call("list pods", self.core.list_namespaced_pod, label_selector=selector).items
        except DeployError as error:  # the stall is the finding; its pods only explain it
            return f"; its pods could not be listed ({error})"
        notes = [note for pod in sorted(pods, key=lambda p: p.metadata.name) if (note := _pod_note(pod))]
        if not notes:
            return ""
        more = f"; {len(notes) - MAX_PODS_DESCRIBED} more" if len(notes) > MAX_PODS_DESCRIBED else ""
        return "; not-ready pods: " + "; ".join(notes[:MAX_PODS_DESCRIBED]) + more

    def _call(self, action: str, method, *args, refusable: bool = False, **kwargs):
        """Call `method(*args, namespace, **kwargs)`. An ApiException becomes a DeployError naming the fix, or
        _Transient (worth repeating), or _Refused (HTTP 422, when `refusable`: a JSON patch whose tests failed)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return method(*args, self.namespace, **kwargs)
        except ApiException as error:
            detail = _detail(error)
            if error.status == 422 and refusable:
                raise _Refused(detail) from None
            if is_transient(error):
                raise _Transient(
                    f"{action} in namespace {self.namespace} failed (HTTP {error.status}): {detail}; the API server "
                    "is restarting or overloaded: run the deploy again"
                ) from None
            hints = {
                401: "the API server refused the credentials",
                403: f"the deploy step's ServiceAccount needs get/list/patch on deployments.apps and list on pods "
                f"in namespace {self.namespace}: kubectl apply -n {self.namespace} -f {RBAC_FILE}",
            }
            hint = f"; {hints[error.status]}" if error.status in hints else ""
            raise DeployError(
                f"{action} in namespace {self.namespace} failed (HTTP {error.status}): {detail}{hint}"
            ) from None
        except Exception as error:
            if is_transient(error):
                raise _Transient(
                    f"{action} in namespace {self.namespace} failed: the API server did not answer ({error}); "
                    "check the cluster's address and run the deploy again"
                ) from None
            raise


class _Refused(Exception):
    """The API server refused a patch whose test ops failed (HTTP 422)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class _Transient(DeployError):
    """An API call that may succeed when repeated (a restarting or overloaded API server, a lost connection)."""


def rollout_progress(deployment) -> tuple[bool, str, str]:
    """(done, what it waits for, why it stalled) of a Deployment, the way `kubectl rollout status` reads it: done
    when the controller has seen the current template and every replica is updated, ready and available with no old
    replica left. A ProgressDeadlineExceeded from an earlier template counts only once the controller has seen
    this one."""
    spec, status = deployment.spec, deployment.status
    wanted = 1 if spec.replicas is None else spec.replicas
    if spec.paused:
        return False, "the Deployment is paused (kubectl rollout resume resumes it)", ""
    generation, observed = deployment.metadata.generation or 0, (status and status.observed_generation) or 0
    if status is None or observed < generation:
        return False, "the controller has not seen the new pod template yet", ""
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return False, "", f"{condition.message} (ProgressDeadlineExceeded)"
    updated, total = status.updated_replicas or 0, status.replicas or 0
    ready, available = status.ready_replicas or 0, status.available_replicas or 0
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated", ""
    if total > updated:
        return False, f"{total - updated} old replicas pending termination", ""
    if ready < updated or available < updated:
        return False, f"{min(ready, available)} of {updated} updated replicas available", ""
    return True, "", ""


def _parse(deployment) -> ServingState:
    """The ServingState of a Deployment rendered by the chart; DeployError when its template is not the chart's."""
    name, namespace = deployment.metadata.name, deployment.metadata.namespace
    template = deployment.spec.template
    fix = f"restore it with `helm upgrade <release> charts/{CHART_NAME} -n {namespace} --reuse-values`"
    containers = template.spec.containers or []
    index = next((i for i, c in enumerate(containers) if c.name == CONTAINER), None)
    if index is None:
        raise DeployError(f"Deployment {name} has no '{CONTAINER}' container: it was not rendered by the chart; {fix}")
    args = containers[index].args or []
    arg_index = next((i for i, a in enumerate(args) if a.startswith(REPOSITORY_FLAG)), None)
    annotations = template.metadata.annotations or {}
    if arg_index is None or VERSION_ANNOTATION not in annotations or REPOSITORY_ANNOTATION not in annotations:
        raise DeployError(
            f"Deployment {name}'s pod template lacks {REPOSITORY_FLAG}<base>/<N> or the {VERSION_ANNOTATION} / "
            f"{REPOSITORY_ANNOTATION} annotations: it was edited by hand or rendered by an older chart; {fix}"
        )
    uri = args[arg_index][len(REPOSITORY_FLAG) :]
    base, _, tail = uri.rpartition("/")
    version = annotations[VERSION_ANNOTATION]
    if not (tail.isdigit() and version == tail and annotations[REPOSITORY_ANNOTATION] == uri):
        raise DeployError(
            f"Deployment {name}'s pod template disagrees with itself: {REPOSITORY_FLAG}{uri}, {VERSION_ANNOTATION}="
            f"{version!r}, {REPOSITORY_ANNOTATION}={annotations[REPOSITORY_ANNOTATION]!r} (edited by hand?); {fix} "
            "--set model.version=<N>"
        )
    _, waiting, stalled = rollout_progress(deployment)
    return ServingState(
        deployment=name,
        namespace=namespace,
        version=int(version),
        repository_uri=uri,
        repository_base=base,
        replicas=1 if deployment.spec.replicas is None else deployment.spec.replicas,
        lineage_id=annotations.get(LINEAGE_ANNOTATION, ""),
        in_progress=stalled or waiting,
        container_index=index,
        arg_index=arg_index,
    )


def _pod_note(pod) -> str:
    """ "<pod>: <container> <state> <reason> (<message>)" for a pod that is not ready; "" for a ready one."""
    status = pod.status
    if status and any(c.type == "Ready" and c.status == "True" for c in status.conditions or []):
        return ""
    parts = []
    for c in (status.container_statuses or []) if status else []:
        if c.state and c.state.waiting:
            parts.append(f"{c.name} waiting: {c.state.waiting.reason}" + _message(c.state.waiting.message))
        elif c.state and c.state.terminated:
            t = c.state.terminated
            parts.append(f"{c.name} terminated: {t.reason} (exit code {t.exit_code})" + _message(t.message))
        elif c.state and c.state.running and not c.ready:
            parts.append(f"{c.name} running, not ready (readiness: every model loaded)")
        last = c.last_state.terminated if c.last_state else None
        if last:
            parts.append(f"last exit: {last.reason} (exit code {last.exit_code})" + _message(last.message))
    if not parts and status:
        unscheduled = [c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"]
        parts = [f"unschedulable: {c.message}" for c in unscheduled] or [f"phase {status.phase}"]
    return f"{pod.metadata.name}: " + ", ".join(parts or ["no status yet"])


def _message(text: str | None) -> str:
    return f" ({text.strip()[:300]})" if text and text.strip() else ""


def _annotation(deployment, key: str) -> str:
    return (deployment.spec.template.metadata.annotations or {}).get(key, "?")


def _escape(key: str) -> str:
    """A JSON-pointer segment (RFC 6901): '~' and '/' escaped."""
    return key.replace("~", "~0").replace("/", "~1")


def _detail(error) -> str:
    """The API server's message from an ApiException, else its reason."""
    detail = getattr(error, "reason", None) or str(error)
    try:
        return json.loads(getattr(error, "body", "") or "{}").get("message") or detail
    except (ValueError, AttributeError):
        return detail
