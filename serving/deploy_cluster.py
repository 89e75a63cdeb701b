"""deploy_cluster(): put a published version into service on the Helm release of charts/emotion-omni-triton, verify
it, and move back to the previous version when it does not prove itself.

    outcome = deploy_cluster(DeployConfig(target="kubernetes", namespace="serving", release="omni"), 4,
                             smoke_wav=wav, lineage_id="run-1/v4")

1. Preflight, changing nothing: the release's Deployment serves some version (components/cluster/serving_rollout.py
   reads it); the new version's repository `<base>/<N>/emotion_omni/config.pbtxt` exists in the object store; the
   last rollout has finished. A failure raises DeployError. The same version already serving is DEPLOYED as is.
2. The move: one JSON patch of the Deployment's pod template (why a patch and not a `helm upgrade`: see
   serving_rollout's docstring), then Kubernetes' rolling update, waited for up to `config.rollout_timeout_s`.
3. Verification: a smoke request through the Service (`config.service_url` overrides it) answered by version N,
   then the metrics window from Prometheus (`config.prometheus_url`; without one the window is not computed and
   readiness plus the smoke request are the whole verification).
4. Any failure after the move: patch back to the previous version and wait for it: ROLLED_BACK, with the reason;
   ROLLBACK_FAILED when the way back fails too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from components.cluster.serving_rollout import ServingRelease, ServingState
from components.contracts import TRITON_MODEL_NAME
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError, VerificationFailed
from components.deploy.outcome import DEPLOYED, ROLLBACK_FAILED, ROLLED_BACK, DeployOutcome
from components.errors import OmniError
from serving.repository import CONFIG_FILE
from serving.smoke import smoke_request

log = logging.getLogger("omni.deploy")

NO_PROMETHEUS = "no prometheus_url: the rollout was verified by readiness and the smoke request only"


def deploy_cluster(
    config: DeployConfig,
    version: int,
    *,
    smoke_wav: bytes,
    lineage_id: str = "",
    is_published: Callable[[str], bool] | None = None,
    api_client=None,
) -> DeployOutcome:
    """Deploy `version` to the Helm release `config.release` in `config.namespace`, verified, rolled back on failure.

    `is_published(uri)` says whether the object `uri` (`<base>/<N>/emotion_omni/config.pbtxt`) exists; the default
    looks in the object store with the S3 credentials of the environment. `api_client`: a kubernetes ApiClient
    (default: in-cluster credentials, else the kubeconfig). Raises DeployError when refused before any change.
    """
    release = ServingRelease(config.namespace, config.release, api_client=api_client)
    outcome = DeployOutcome(
        target=f"kubernetes {release.namespace}/{config.release}",
        version=version,
        previous_version=None,
        lineage_id=lineage_id,
    )
    start = time.monotonic()
    before = release.state()
    outcome.previous_version = before.version
    if before.in_progress:
        raise DeployError(
            f"Deployment {before.deployment} in namespace {before.namespace} is mid-rollout ({before.in_progress}), "
            f"so what serves is not one version: wait for `kubectl -n {before.namespace} rollout status deployment/"
            f"{before.deployment}` (or fix what stalls it), then deploy again"
        )
    if before.version == version:
        outcome.step("preflight", start, f"v{version} already serves ({before.repository_uri}): nothing changed")
        outcome.outcome, outcome.serving_version = DEPLOYED, version
        return outcome
    marker = f"{before.repository_base}/{version}/{TRITON_MODEL_NAME}/{CONFIG_FILE}"
    if not (is_published or published_in_object_store)(marker):
        raise DeployError(
            f"version {version} was never published to {before.repository_base}/{version}: no {marker}. Publish it "
            "(the pipeline's export step, or serving.repository.publish_model_repository) or deploy a published "
            "version"
        )
    outcome.step("preflight", start, f"v{before.version} serves {before.replicas} replicas; v{version} is published")

    start = time.monotonic()
    release.move_to(version, lineage_id=lineage_id)  # refused (DeployError) when anyone moved it since the read
    outcome.step("patch", start, f"{before.deployment}: {before.repository_base}/{version}")
    try:
        _roll_out(release, config, version, outcome)
        _smoke(config.service_url or before.service_url, config, version, smoke_wav, outcome)
        _window(config, before, version, outcome)
    except Exception as failure:  # whatever failed after the move, the previous version must serve again
        reason = str(failure) if isinstance(failure, OmniError) else f"{type(failure).__name__}: {failure}"
        _roll_back(release, config, before, reason, outcome)
        return outcome
    outcome.outcome, outcome.serving_version = DEPLOYED, version
    return outcome


def published_in_object_store(uri: str) -> bool:
    """Whether the object `uri` (s3://...) exists, with the environment's S3 credentials."""
    from components.storage import list_objects

    folder, _, name = uri.rpartition("/")
    try:
        return name in list_objects(folder)
    except OmniError as error:  # no credentials, an unreachable store, a URI that is not s3://
        raise DeployError(
            f"cannot check that {uri} was published: {error}. Fix that, or pass is_published to deploy_cluster"
        ) from None


def _roll_out(release: ServingRelease, config: DeployConfig, version: int, outcome: DeployOutcome) -> None:
    start = time.monotonic()
    try:
        release.wait_rolled_out(config.rollout_timeout_s, config.poll_s)
    except Exception:
        outcome.step("rollout", start, "failed")
        raise
    outcome.step("rollout", start, f"every replica serves v{version}")


def _smoke(url: str, config: DeployConfig, version: int, wav: bytes, outcome: DeployOutcome) -> None:
    start = time.monotonic()
    try:
        outcome.smoke = smoke_request(url, wav, expect_version=version, timeout_s=config.smoke_timeout_s)
    except Exception:
        outcome.step("smoke", start, f"failed ({url})")
        raise
    outcome.step("smoke", start, f"v{version} answered at {url} in {outcome.smoke['latency_s']} s")


def _window(config: DeployConfig, serving: ServingState, version: int, outcome: DeployOutcome) -> None:
    """The serving-metrics window from Prometheus; VerificationFailed when it fails. The series are this release's:
    the chart's ServiceMonitor labels them with the namespace and the Service (named like the Deployment), so another
    release serving the same model and version in the namespace is not counted."""
    start = time.monotonic()
    if not config.prometheus_url:
        outcome.window = {"computed": False, "reason": NO_PROMETHEUS}
        outcome.step("window", start, f"not computed: {NO_PROMETHEUS}")
        return
    from components.deploy.metrics_window import PrometheusSource, watch_window

    selector = {"namespace": serving.namespace, "service": serving.deployment}
    source = PrometheusSource(config.prometheus_url, TRITON_MODEL_NAME, version, selector=selector)
    verdict = watch_window(source, config)
    outcome.window = verdict.to_dict()
    outcome.step("window", start, verdict.reason)
    if not verdict.passed:
        raise VerificationFailed(f"metrics window: {verdict.reason}")


def _roll_back(
    release: ServingRelease, config: DeployConfig, before: ServingState, reason: str, outcome: DeployOutcome
) -> None:
    """Patch back to `before` and wait for it; the outcome says ROLLED_BACK, or ROLLBACK_FAILED and why."""
    log.warning("v%s failed after the move (%s); rolling back to v%s", outcome.version, reason, before.version)
    outcome.reason = reason
    start = time.monotonic()
    try:
        release.move_to(before.version, lineage_id=before.lineage_id)
        release.wait_rolled_out(config.rollout_timeout_s, config.poll_s)
    except Exception as error:
        outcome.step("rollback", start, f"failed: {error}")
        outcome.outcome = ROLLBACK_FAILED
        outcome.reason = (
            f"{reason}; the rollback to v{before.version} failed too: {error}. Check `kubectl -n {before.namespace} "
            f"rollout status deployment/{before.deployment}`; `kubectl -n {before.namespace} rollout undo "
            f"deployment/{before.deployment}` restores the previous pod template"
        )
        outcome.serving_version = _serving_now(release)
        return
    outcome.step("rollback", start, f"v{before.version} serves again ({before.repository_uri})")
    outcome.outcome, outcome.serving_version = ROLLED_BACK, before.version


def _serving_now(release: ServingRelease) -> int | None:
    """The version the pod template names after a failed rollback, when it can be read (the pods may lag)."""
    try:
        return release.state().version
    except DeployError as error:
        log.warning("could not read back what serves: %s", error)
        return None
