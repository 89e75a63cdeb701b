"""The Kubernetes API as the TrainJob launcher meets it: credentials, the namespace, and errors that name the fix.

The launcher's ServiceAccount needs, in the job's namespace: create/get/delete on trainjobs.trainer.kubeflow.org,
list on pods, get on pods/log (pipelines/rbac/trainjob-launcher.yaml). The kubernetes client is imported lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.errors import OmniError

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TRANSIENT_STATUS = {429, 500, 502, 503, 504}  # an API server restarting or shedding load: worth a retry
RBAC_HINT = (
    "the launcher's ServiceAccount needs create/get/delete on trainjobs.trainer.kubeflow.org, list on "
    "pods and get on pods/log in that namespace (pipelines/rbac/trainjob-launcher.yaml)"
)


class TrainJobError(OmniError, RuntimeError):
    """A TrainJob could not be created or watched, failed, or did not finish; the message says why and what next."""


def load_api_client():
    """A kubernetes ApiClient: in-cluster credentials in a pod, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            raise TrainJobError(
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


def api_error(action: str, error: Exception, namespace: str) -> TrainJobError:
    """A TrainJobError for a failed API call: the HTTP status, the server's message and, for the usual
    statuses, what to check."""
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
    return TrainJobError(f"{action} in namespace {namespace!r} failed (HTTP {status}): {detail}{hint}")


def is_transient(error: Exception) -> bool:
    """Whether a failed API call may succeed when repeated: a retryable HTTP status or a lost connection."""
    import urllib3

    return getattr(error, "status", None) in TRANSIENT_STATUS or isinstance(
        error, (urllib3.exceptions.HTTPError, ConnectionError)
    )
