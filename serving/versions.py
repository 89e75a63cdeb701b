"""The versions of a local served repository, side by side, and which one each model serves.

    <repo>/emotion_omni/config.pbtxt             the pinned version's config + version_policy [N]: what Triton serves
    <repo>/emotion_omni/<N>/config.pbtxt         each version's own config (build_model_repository writes it)
    <repo>/emotion_omni/<N>/{model.py, weights/}
    <repo>/emotion_omni_stream/...               the same for the streaming model
    <repo>/emotion_omni_candidate/               only during a deploy: version N under another name (stage_candidate)

Triton in explicit model-control mode reads the root config.pbtxt again on each load request, so a deploy is: pin
the version here, then ask Triton to load the model (serving/repository_api.py); Triton keeps the old version
serving until the new one is ready. Unversioned requests go to the highest READY version, so a version is
smoke-tested as the candidate model first, where no caller's request can reach it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from components.atomic import write_atomic
from components.contracts import TRITON_CANDIDATE_MODEL_NAME, TRITON_MODEL_NAME
from components.deploy.errors import DeployError
from serving.repository import CONFIG_FILE, MODELS, link_or_copy, weights_dir_name, with_instance_count

_NAME_LINE = re.compile(r'^name:\s*"[^"]*"', re.MULTILINE)
# One nesting level: version_policy: { specific: { versions: [1, 2] } } (or { latest: { num_versions: 1 } }).
_POLICY = re.compile(r"^version_policy:\s*\{[^{}]*(\{[^{}]*\}[^{}]*)?\}\n?", re.MULTILINE)


def published_versions(repo: Path, model: str = TRITON_MODEL_NAME) -> list[int]:
    """The versions of `model` in `repo`, ascending: its numbered directories."""
    model_root = Path(repo) / model
    if not model_root.is_dir():
        return []
    return sorted(int(p.name) for p in model_root.iterdir() if p.is_dir() and p.name.isdigit())


def check_published(repo: Path, version: int, models: tuple[str, ...] = (TRITON_MODEL_NAME,)) -> None:
    """Raise DeployError unless each of `models` has version `version` in `repo`, with its config and weights."""
    for model in models:
        version_dir = Path(repo) / model / str(version)
        if not version_dir.is_dir():
            have = published_versions(repo, model)
            raise DeployError(
                f"version {version} was never published to {Path(repo) / model} (it has versions {have}); "
                "deploy one of those, or install the version first (serving.versions.install_version from the "
                "pipeline's exported repository, or build_model_repository(..., version=N) on this repository)"
            )
        if not (version_dir / CONFIG_FILE).is_file():
            raise DeployError(
                f"{version_dir} has no {CONFIG_FILE} of its own (built before versions kept one); rebuild it with "
                f"build_model_repository(..., version={version}) or install it again with install_version"
            )
        weights = version_dir / weights_dir_name((version_dir / CONFIG_FILE).read_text())
        if not weights.is_dir():
            raise DeployError(f"{weights} is missing: version {version} is incomplete; build or install it again")


def install_version(source_repo: Path, repo: Path, version: int) -> None:
    """Hard-link version `version` of both models from a built repository (e.g. the pipeline's export artifact) into
    the served `repo`. A model's root config.pbtxt is written only where the model has none yet, so installing never
    changes what serves; an existing version directory is refused rather than replaced under a running server."""
    source_repo, repo = Path(source_repo), Path(repo)
    check_published(source_repo, version, MODELS)
    for model in MODELS:
        target = repo / model / str(version)
        if target.exists():
            raise DeployError(
                f"{target} already exists; a published version is never replaced in place (Triton may be serving "
                "it): build the new model as the next version number"
            )
    for model in MODELS:
        source = source_repo / model / str(version)
        shutil.copytree(source, repo / model / str(version), copy_function=link_or_copy)
        root_config = repo / model / CONFIG_FILE
        if not root_config.exists():
            write_atomic(root_config, (source / CONFIG_FILE).read_text())


def version_config(repo: Path, model: str, version: int) -> str:
    """The config.pbtxt version `version` of `model` was built with."""
    path = Path(repo) / model / str(version) / CONFIG_FILE
    try:
        return path.read_text()
    except FileNotFoundError:
        raise DeployError(
            f"{path} is missing; rebuild version {version} with build_model_repository(..., version={version})"
        ) from None


def with_version_policy(config_text: str, version: int) -> str:
    """config.pbtxt text that serves only `version` (any version_policy it had is replaced)."""
    text = _POLICY.sub("", config_text).rstrip("\n")
    return f"{text}\n\n# Pinned by serving.versions.pin_version: Triton serves this version only.\n" + (
        f"version_policy: {{ specific: {{ versions: [{version}] }} }}\n"
    )


def pin_version(repo: Path, model: str, version: int) -> str:
    """Make `model` serve `version` at its next load: its root config.pbtxt becomes the version's own config with a
    version policy of [version]. Returns the previous text (so a failed swap can restore it with restore_config)."""
    path = Path(repo) / model / CONFIG_FILE
    previous = path.read_text() if path.exists() else ""
    write_atomic(path, with_version_policy(version_config(repo, model, version), version))
    return previous


def restore_config(repo: Path, model: str, text: str) -> None:
    """Put back a root config.pbtxt that pin_version returned."""
    write_atomic(Path(repo) / model / CONFIG_FILE, text)


def stage_candidate(repo: Path, version: int) -> Path:
    """Lay out version `version` of emotion_omni as the candidate model (one instance: it only answers the smoke
    request, and its memory comes on top of the serving version's). Returns the candidate's directory."""
    repo = Path(repo)
    config = version_config(repo, TRITON_MODEL_NAME, version)
    config = _NAME_LINE.sub(f'name: "{TRITON_CANDIDATE_MODEL_NAME}"', config, count=1)
    config = with_version_policy(with_instance_count(config, 1), version)
    remove_candidate(repo)  # a deploy cut short leaves one behind
    candidate = repo / TRITON_CANDIDATE_MODEL_NAME
    source = repo / TRITON_MODEL_NAME / str(version)
    shutil.copytree(source, candidate / str(version), copy_function=link_or_copy)
    write_atomic(candidate / CONFIG_FILE, config)
    return candidate


def remove_candidate(repo: Path) -> None:
    """Delete the candidate model's directory (unload it from Triton first)."""
    shutil.rmtree(Path(repo) / TRITON_CANDIDATE_MODEL_NAME, ignore_errors=True)
