"""Deploy a published version to a running `omni serve` (explicit model-control mode), verified, with no downtime;
roll back automatically when it fails verification.

    outcome = deploy_local(DeployConfig(target="local", repository="serve/model_repository", url="127.0.0.1:8000"),
                           3, smoke_wav=probe_wav())
    print("\\n".join(outcome.lines()))

The flow, and why each step is where it is:
1. preflight, changing nothing: the admin key, the repository, the version, the server and what it serves now.
2. the version loads as the candidate model (another name: no caller reaches it) and answers a smoke request;
   either failing refuses the deploy while the old version serves on.
3. each served model is pinned to the version and reloaded; Triton keeps the old version serving until the new one
   is ready, so callers see no gap.
4. verify through the real name (only the new version is ready, a smoke request answers from it), then the metrics
   window; a failure restores the previous version the same way (pin + load + smoke).

Everything that happens is a step of the returned DeployOutcome, which also goes to <repo>/deployments.json.
Nothing is printed; progress is logged to "omni.deploy".
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from components.contracts import DEPLOYMENTS_FILE, TRITON_CANDIDATE_MODEL_NAME, TRITON_MODEL_NAME
from components.deploy.config import DeployConfig
from components.deploy.errors import DeployError, VerificationFailed
from components.deploy.metrics_window import ScrapeSource, watch_window
from components.deploy.outcome import DEPLOYED, REFUSED, ROLLBACK_FAILED, ROLLED_BACK, DeployOutcome
from serving.deploy_history import DeploymentHistory
from serving.repository import MODELS
from serving.repository_api import RepositoryAPI
from serving.smoke import smoke_request
from serving.versions import check_published, pin_version, remove_candidate, restore_config, stage_candidate

log = logging.getLogger("omni.deploy")
_POLL_S = 0.2


@dataclass
class _Plan:
    """What the preflight found: how to reach the server, and what serves now."""

    repo: Path
    api: RepositoryAPI
    history: DeploymentHistory
    served: dict[str, list[int]]  # each loaded model's READY versions
    previous: int | None  # the version unversioned requests reach now; None: nothing serves


def deploy_local(config: DeployConfig, version: int, *, smoke_wav: bytes, lineage_id: str = "") -> DeployOutcome:
    """Deploy published `version` to the server at `config.url` serving `config.repository`. Raises DeployError
    only before any change (see module doc); every later failure is the returned outcome's (REFUSED, ROLLED_BACK,
    ROLLBACK_FAILED)."""
    return _deploy(config, version, smoke_wav, lineage_id, "")


def rollback_local(config: DeployConfig, *, smoke_wav: bytes, to_version: int | None = None) -> DeployOutcome:
    """Deploy the version that served before the current one (deployments.json), or `to_version`, the same way."""
    history = DeploymentHistory(Path(config.repository) / DEPLOYMENTS_FILE)
    target = to_version if to_version is not None else history.previous()
    if target is None:
        raise DeployError(
            f"no version to roll back to: {history.path} records none that served before the current one; "
            "pass the version to go back to (omni rollback --to-version N)"
        )
    lineage = next((r.lineage_id for r in reversed(history.records()) if r.version == target and r.lineage_id), "")
    return _deploy(config, target, smoke_wav, lineage, "rollback")


def _deploy(config: DeployConfig, version: int, smoke_wav: bytes, lineage_id: str, why: str) -> DeployOutcome:
    start = time.monotonic()
    plan = _preflight(config, version)
    outcome = DeployOutcome(f"local {config.repository} at {config.url}", version, plan.previous, lineage_id=lineage_id)
    served = ", ".join(f"{m} {v}" for m, v in plan.served.items()) or "nothing"
    outcome.step("preflight", start, f"{why + ': ' if why else ''}serving {served}")
    log.info("deploy v%s to %s: serving %s", version, config.url, served)
    if plan.served and all(v == [version] for v in plan.served.values()):
        outcome.outcome, outcome.reason = DEPLOYED, "already serving"
    elif plan.previous is None:
        _first_deploy(config, plan, version, smoke_wav, outcome)
    elif _candidate_passes(config, plan, version, smoke_wav, outcome):
        _swap_and_verify(config, plan, version, smoke_wav, outcome)
    if outcome.outcome == DEPLOYED:
        _pin_unloaded(plan, version)
    outcome.serving_version = _serving_now(plan)
    plan.history.record(outcome)
    log.info("deploy v%s: %s%s", version, outcome.outcome, f" ({outcome.reason})" if outcome.reason else "")
    return outcome


def _preflight(config: DeployConfig, version: int) -> _Plan:
    if not config.url or not config.grpc_url:
        raise DeployError(
            "DeployConfig.url and grpc_url must both be set: the HTTP host:port (smoke requests) and the gRPC "
            "host:port (the repository API) of the running `omni serve`"
        )
    key = os.environ.get(config.admin_key_env, "")
    if not key:
        raise DeployError(
            f"${config.admin_key_env} is not set: export it with the restricted-API key `omni serve` was started "
            "with (the repository API that loads versions answers only requests carrying it)"
        )
    repo = Path(config.repository)
    if not (repo / TRITON_MODEL_NAME).is_dir():
        raise DeployError(
            f"{repo} is not a served model repository (no {TRITON_MODEL_NAME}/ in it); pass the directory "
            "`omni serve --model-repository` serves"
        )
    history = DeploymentHistory(repo / DEPLOYMENTS_FILE)
    history.records()  # a corrupt history refuses now, not after the swap
    check_published(repo, version)
    api = RepositoryAPI(config.grpc_url, key, config.admin_header, key_env=config.admin_key_env)
    index = api.index()  # the server is there, and takes the key
    served = {}
    for model in MODELS:
        ready = sorted(int(m["version"]) for m in index if m.get("name") == model and m.get("state") == "READY")
        if ready:
            served[model] = ready
    for model in served:
        check_published(repo, version, (model,))
    previous = max(served[TRITON_MODEL_NAME]) if TRITON_MODEL_NAME in served else None
    if previous is not None and previous != version:
        check_published(repo, previous, tuple(served))  # a rollback pins it again
    return _Plan(repo, api, history, served, previous)


def _first_deploy(config: DeployConfig, plan: _Plan, version: int, smoke_wav: bytes, outcome: DeployOutcome) -> None:
    """Nothing serves yet: no caller to protect, so the version loads under its own name directly."""
    start = time.monotonic()
    old = pin_version(plan.repo, TRITON_MODEL_NAME, version)
    try:
        plan.api.load(TRITON_MODEL_NAME)
    except DeployError as err:
        restore_config(plan.repo, TRITON_MODEL_NAME, old)
        outcome.step("load", start, "failed")
        outcome.outcome, outcome.reason = REFUSED, str(err)
        return
    outcome.step("load", start, f"{TRITON_MODEL_NAME} v{version}")
    reason = _verify(config, plan, version, smoke_wav, outcome)
    if reason is None:
        outcome.outcome = DEPLOYED
        return
    start = time.monotonic()
    try:  # nothing to go back to: take it out of service
        plan.api.unload(TRITON_MODEL_NAME)
        restore_config(plan.repo, TRITON_MODEL_NAME, old)
        outcome.step("rollback", start, "unloaded: nothing served before")
        outcome.outcome, outcome.reason = ROLLED_BACK, reason
    except DeployError as err:
        outcome.step("rollback", start, "failed")
        outcome.outcome, outcome.reason = ROLLBACK_FAILED, f"{reason}; unloading it failed too: {err}"


def _candidate_passes(config: DeployConfig, plan: _Plan, version: int, wav: bytes, outcome: DeployOutcome) -> bool:
    """Load the version as the candidate model and smoke it; on a failure the outcome is REFUSED and it is gone."""
    start = time.monotonic()
    stage_candidate(plan.repo, version)
    try:
        plan.api.load(TRITON_CANDIDATE_MODEL_NAME)
        outcome.step("load candidate", start, f"{TRITON_CANDIDATE_MODEL_NAME} v{version}")
    except DeployError as err:
        outcome.step("load candidate", start, "failed")
        outcome.outcome, outcome.reason = REFUSED, str(err)
        _drop_candidate(plan, outcome)
        return False
    start = time.monotonic()
    try:
        reply = smoke_request(
            config.url, wav, model_name=TRITON_CANDIDATE_MODEL_NAME, timeout_s=config.smoke_timeout_s,
            expect_version=version,
        )  # fmt: skip
        outcome.step("smoke candidate", start, f"v{version} answered in {reply['latency_s']} s")
        return True
    except VerificationFailed as err:
        outcome.step("smoke candidate", start, "failed")
        outcome.outcome, outcome.reason = REFUSED, str(err)
        _drop_candidate(plan, outcome)
        return False


def _drop_candidate(plan: _Plan, outcome: DeployOutcome) -> None:
    start = time.monotonic()
    try:
        plan.api.unload(TRITON_CANDIDATE_MODEL_NAME)
        detail = ""
    except DeployError as err:  # the deploy's result stands; the candidate only costs memory until a restart
        detail = f"unload failed: {err}"
        log.warning("could not unload the candidate: %s", err)
    remove_candidate(plan.repo)
    outcome.step("unload candidate", start, detail)


def _swap_and_verify(config: DeployConfig, plan: _Plan, version: int, wav: bytes, outcome: DeployOutcome) -> None:
    # The streaming model first: if it fails, emotion_omni, the one the smoke test proves, was never touched.
    models = sorted(plan.served, key=lambda m: m == TRITON_MODEL_NAME)
    swapped: list[str] = []
    for model in models:
        start = time.monotonic()
        old = pin_version(plan.repo, model, version)
        try:
            plan.api.load(model)
        except DeployError as err:
            restore_config(plan.repo, model, old)  # Triton kept the old version loaded
            outcome.step(f"swap {model}", start, "failed")
            _drop_candidate(plan, outcome)
            restored = _restore(plan, swapped, outcome)
            outcome.outcome = REFUSED if restored is None else ROLLBACK_FAILED
            outcome.reason = str(err) if restored is None else f"{err}; restoring {swapped} failed: {restored}"
            return
        swapped.append(model)
        outcome.step(f"swap {model}", start, f"v{max(plan.served[model])} -> v{version}")
    _drop_candidate(plan, outcome)
    reason = _verify(config, plan, version, wav, outcome)
    if reason is None:
        reason = _window(config, version, outcome)
    if reason is None:
        outcome.outcome = DEPLOYED
        return
    failed = _restore(plan, swapped, outcome)
    if failed is None:
        failed = _verify(config, plan, plan.previous, wav, outcome, step="verify rollback")
    outcome.outcome = ROLLED_BACK if failed is None else ROLLBACK_FAILED
    outcome.reason = reason if failed is None else f"{reason}; the rollback to v{plan.previous} failed too: {failed}"


def _restore(plan: _Plan, models: list[str], outcome: DeployOutcome) -> str | None:
    """Pin `models` back to the version each served before and load them; None when done, else why not."""
    for model in models:
        start = time.monotonic()
        version = max(plan.served[model])
        try:
            pin_version(plan.repo, model, version)
            plan.api.load(model)
            outcome.step(f"rollback {model}", start, f"-> v{version}")
        except DeployError as err:
            outcome.step(f"rollback {model}", start, "failed")
            return str(err)
    return None


def _verify(
    config: DeployConfig, plan: _Plan, version: int, wav: bytes, outcome: DeployOutcome, step: str = "verify"
) -> str | None:
    """Wait until emotion_omni's only ready version is `version` (the old one unloads once its in-flight requests
    finish), then smoke it through the name callers use. None when it passed, else why not."""
    start = time.monotonic()
    try:
        _wait_only(plan.api, version, config.smoke_timeout_s)
        outcome.smoke = smoke_request(config.url, wav, timeout_s=config.smoke_timeout_s, expect_version=version)
    except DeployError as err:
        outcome.step(step, start, "failed")
        return str(err)
    outcome.step(step, start, f"v{version} answered in {outcome.smoke['latency_s']} s")
    return None


def _wait_only(api: RepositoryAPI, version: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (ready := api.ready_versions(TRITON_MODEL_NAME)) != [version]:
        if time.monotonic() > deadline:
            raise VerificationFailed(
                f"{TRITON_MODEL_NAME} has versions {ready} ready {timeout_s:.0f} s after the load, expected only "
                f"[{version}]"
            )
        time.sleep(_POLL_S)


def _window(config: DeployConfig, version: int, outcome: DeployOutcome) -> str | None:
    """Watch the version's serving metrics for config.window_s; None when it passed (or is off), else why not."""
    start = time.monotonic()
    if config.window_s == 0 or not config.metrics_url:
        outcome.step("window", start, "skipped: " + ("window_s = 0" if config.window_s == 0 else "no metrics_url"))
        return None
    verdict = watch_window(ScrapeSource(config.metrics_url, TRITON_MODEL_NAME, version), config)
    outcome.window = verdict.to_dict()
    outcome.step("window", start, verdict.reason)
    return None if verdict.passed else f"metrics window: {verdict.reason}"


def _pin_unloaded(plan: _Plan, version: int) -> None:
    """Pin the repository's models that this server does not have loaded (a server started with emotion_omni only)
    to the deployed version too, so the next `omni serve` of the repository loads every model at the same version."""
    for model in MODELS:
        if model not in plan.served and (plan.repo / model / str(version)).is_dir():
            pin_version(plan.repo, model, version)


def _serving_now(plan: _Plan) -> int | None:
    """What unversioned requests reach now, read back from the server; None when nothing (or it cannot be read)."""
    try:
        ready = plan.api.ready_versions(TRITON_MODEL_NAME)
    except DeployError as err:
        log.warning("could not read back what serves: %s", err)
        return None
    return max(ready) if ready else None
