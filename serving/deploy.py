"""deploy(): the one entry the pipeline's deploy step and `omni deploy` share. It picks the target's mover (a local
`omni serve` through Triton's repository API, or the Helm release's Deployment on Kubernetes), gives it a smoke
utterance, and records the outcome in MLflow, where only a verified rollout moves the `production` alias.

A local target without a running server (`url` ""): the deploy starts a tritonserver on the repository for the
deploy and stops it after. The repository keeps the version pinned in its config.pbtxt, so the next
`omni serve --model-repository <repository>` serves what was deployed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import replace
from pathlib import Path

from components.contracts import DEPLOYMENTS_FILE, TRITON_MODEL_NAME
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError
from components.deploy.outcome import ROLLBACK_FAILED, DeployOutcome
from components.errors import ConfigError

log = logging.getLogger("omni.deploy")


def smoke_wav_from_dataset(dataset_dir: Path, split: str = "test") -> bytes:
    """The first held-out utterance of a dataset: the smoke request a deploy sends (the pipeline's own data)."""
    from components.synthesis import read_manifest

    rows = [r for r in read_manifest(dataset_dir) if r["split"] == split]
    if not rows:
        raise ConfigError(f"{dataset_dir} has no '{split}' rows to send as the smoke request")
    return (Path(dataset_dir) / rows[0]["user_wav"]).read_bytes()


def deploy(
    config: DeployConfig,
    version: int,
    *,
    smoke_wav: bytes,
    lineage_id: str = "",
    tracking_uri: str = "",
    model_name: str = "",
    source_repository: Path | None = None,
) -> DeployOutcome:
    """Deploy `version` to `config.target`, verified; record it in MLflow when `tracking_uri` is given.

    `source_repository` (local target): a built repository holding the version (the pipeline's export artifact),
    installed into `config.repository` first. A restore that failed after a failed verification raises DeployError:
    nobody can say what serves, and an SRE must look.
    """
    if tracking_uri:  # an unregistered version is refused before anything changes, not after it serves
        from components.registry.workflow import check_registered

        check_registered(version, tracking_uri=tracking_uri, model_name=model_name)
    if config.target == "local":
        if source_repository is not None:
            from serving.versions import install_version

            install_version(Path(source_repository), Path(config.repository), version)
        outcome = _deploy_local(config, version, smoke_wav, lineage_id)
    elif config.target == "kubernetes":
        from serving.deploy_cluster import deploy_cluster

        outcome = deploy_cluster(config, version, smoke_wav=smoke_wav, lineage_id=lineage_id)
    else:
        raise ConfigError(f"deploy target {config.target!r}: use 'local' or 'kubernetes'")
    if tracking_uri:
        from components.registry.workflow import record_deployment

        record_deployment(outcome, tracking_uri=tracking_uri, model_name=model_name)
    if outcome.outcome == ROLLBACK_FAILED:
        raise DeployError("\n".join(outcome.lines()) + "\nFix: check the serving logs and restore a version by hand")
    return outcome


def _deploy_local(config: DeployConfig, version: int, smoke_wav: bytes, lineage_id: str) -> DeployOutcome:
    from serving.deploy_local import deploy_local

    if config.url:
        return deploy_local(config, version, smoke_wav=smoke_wav, lineage_id=lineage_id)
    with _deploy_server(config) as live:
        return deploy_local(live, version, smoke_wav=smoke_wav, lineage_id=lineage_id)


@contextlib.contextmanager
def _deploy_server(config: DeployConfig):
    """A tritonserver on `config.repository` for one deploy, under a one-time admin key, serving what the
    repository's deploy history says serves (nothing on a first deploy)."""
    from serving.deploy_history import DeploymentHistory
    from serving.launcher import TritonConfig, TritonServer

    repository = Path(config.repository)
    serving = DeploymentHistory(repository / DEPLOYMENTS_FILE).serving()
    key = secrets.token_urlsafe(24)
    server_config = TritonConfig(
        model_repository=str(repository),
        models=(TRITON_MODEL_NAME,) if serving is not None else (),
        load_models_at_start=serving is not None,
        admin_key=key,
        admin_header=config.admin_header,
        work_dir=str(repository.parent / f"{repository.name}-triton"),
    )
    log.info("starting tritonserver on %s for the deploy (serving %s)", repository, serving or "nothing yet")
    saved = os.environ.get(config.admin_key_env)
    os.environ[config.admin_key_env] = key
    try:
        with TritonServer(server_config) as server:
            # No window: a server started for this deploy has no callers, so its metrics would say nothing.
            yield replace(
                config, url=server.http_url, grpc_url=server.grpc_url, metrics_url=server.metrics_url, window_s=0.0
            )
    finally:
        if saved is None:
            os.environ.pop(config.admin_key_env, None)
        else:
            os.environ[config.admin_key_env] = saved
