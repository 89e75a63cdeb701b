"""Turn an exported model directory into a Triton model repository for emotion_omni.

Layout produced (what `TritonConfig.model_repository` points at):

    <repo_dir>/emotion_omni/config.pbtxt
    <repo_dir>/emotion_omni/<version>/config.pbtxt     the same config, kept with its version (see below)
    <repo_dir>/emotion_omni/<version>/model.py
    <repo_dir>/emotion_omni/<version>/weights/{config.json, model.safetensors, tokenizer.json, ...}
    <repo_dir>/emotion_omni_stream/...     the same, its config.pbtxt decoupled (gRPC streaming)

config.pbtxt and model.py are the checked-in files under serving/model_repository (shipped as package
data); both models run the one model.py. The weights directory name is read from config.pbtxt's "weights_dir"
parameter so the two cannot disagree. The streaming model's weights are hard links to the other's where the file
system allows (no second copy on disk; each model still loads its own into memory).

Triton reads only the model's root config.pbtxt. In a served repository holding versions side by side (a local
`omni serve` that `omni deploy` moves between versions: serving/versions.py) the root one is whichever version is
pinned, so each version also keeps its own copy: the config it was built and tested with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from components.contracts import LINEAGE_FILE, MODEL_CARD_FILE, TRITON_MODEL_NAME, TRITON_STREAM_MODEL_NAME
from components.errors import ConfigError
from components.export.model_dir import check_model_dir

TEMPLATES = Path(__file__).parent / "model_repository"
TEMPLATE_DIR = TEMPLATES / TRITON_MODEL_NAME  # emotion_omni: config.pbtxt and 1/model.py
MODELS = (TRITON_MODEL_NAME, TRITON_STREAM_MODEL_NAME)  # every model a repository holds
CONFIG_FILE = "config.pbtxt"  # Triton's name for a model's configuration, beside its version directories


def weights_dir_name(config_text: str) -> str:
    """The "weights_dir" parameter of a config.pbtxt: the weights' directory inside the version dir."""
    match = re.search(r'key:\s*"weights_dir"\s*value:\s*\{\s*string_value:\s*"([^"]+)"', config_text)
    if match is None:
        raise ValueError('config.pbtxt has no parameters { key: "weights_dir" value: { string_value: "..." } }')
    return match.group(1)


INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
_KIND_LINE = re.compile(r"^(\s*kind:\s*)KIND_\w+", re.MULTILINE)
_COUNT_LINE = re.compile(r"^(\s*count:\s*)\d+", re.MULTILINE)


def with_instance_kind(config_text: str, instance_kind: str) -> str:
    """config.pbtxt text with its instance_group kind set to `instance_kind` ("cpu" or "gpu").

    "gpu" also sets one instance: the checked-in counts were measured on CPU cores (`omni bench serve`), and on a
    GPU every instance is another copy of the weights in GPU memory; measure there before raising it.
    """
    if instance_kind not in INSTANCE_KINDS:
        raise ConfigError(f"instance_kind={instance_kind!r}: use one of {sorted(INSTANCE_KINDS)}")
    text, count = _KIND_LINE.subn(rf"\g<1>{INSTANCE_KINDS[instance_kind]}", config_text)
    if count != 1:
        raise ValueError(f"config.pbtxt has {count} instance_group kinds; expected exactly one to set")
    # A config without a count line already has Triton's default of one instance.
    return with_instance_count(text, 1) if instance_kind == "gpu" and _COUNT_LINE.search(text) else text


def with_instance_count(config_text: str, count: int) -> str:
    """config.pbtxt text with its instance_group count set to `count`."""
    text, found = _COUNT_LINE.subn(rf"\g<1>{count}", config_text)
    if found != 1:
        raise ValueError(f"config.pbtxt has {found} instance_group counts; expected exactly one to set")
    return text


def with_parameter(config_text: str, key: str, value: str) -> str:
    """config.pbtxt text with a string parameter `key` set to `value` (replaced if present, else appended)."""
    if not re.fullmatch(r"[\w.-]*", value):
        raise ConfigError(f"config.pbtxt parameter {key}={value!r}: only letters, digits, '_', '.' and '-' are allowed")
    block = f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
    pattern = re.compile(r'parameters:\s*\{\s*key:\s*"' + re.escape(key) + r'"\s*value:\s*\{[^}]*\}\s*\}\n?')
    text, found = pattern.subn(block, config_text)
    return text if found else config_text.rstrip("\n") + "\n\n" + block


def build_model_repository(
    model_dir: Path,
    repo_dir: Path,
    *,
    version: int = 1,
    instance_kind: str = "cpu",
    lineage: dict | None = None,
    model_card: str = "",
) -> Path:
    """Copy the emotion_omni trio and the exported model in `model_dir` into `repo_dir`; return `repo_dir`.

    An existing `<repo_dir>/emotion_omni/<version>` is replaced; other versions are left alone (Triton
    serves the highest one). `instance_kind` "gpu" writes KIND_GPU into config.pbtxt, so model.py runs on
    the GPU Triton assigns: the repository for the Helm chart's gpu profile.

    `lineage` (at least {"lineage_id": ...}: the pipeline run, MLflow version and run) goes into config.pbtxt as the
    "lineage_id" parameter, which Triton's model-config API and EmotionOmniClient.lineage() show, and into
    LINEAGE_FILE beside the version; `model_card` into MODEL_CARD_FILE beside it.
    """
    model_dir, repo_dir = Path(model_dir), Path(repo_dir)
    check_model_dir(model_dir, fix="pass the exported model directory (the export stage's output), or re-run it")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"version={version!r}: Triton model versions are integers >= 1")

    weights = None
    for name in MODELS:
        config_text = with_instance_kind((TEMPLATES / name / CONFIG_FILE).read_text(), instance_kind)
        if lineage:
            config_text = with_parameter(config_text, "lineage_id", str(lineage["lineage_id"]))
        model_root = repo_dir / name
        version_dir = model_root / str(version)
        if version_dir.exists():
            shutil.rmtree(version_dir)
        version_dir.mkdir(parents=True)
        (model_root / CONFIG_FILE).write_text(config_text)
        (version_dir / CONFIG_FILE).write_text(config_text)
        shutil.copy2(TEMPLATE_DIR / "1" / "model.py", version_dir / "model.py")
        if lineage:
            (version_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        if model_card:
            (version_dir / MODEL_CARD_FILE).write_text(model_card, encoding="utf-8")
        target = version_dir / weights_dir_name(config_text)
        if weights is None:
            weights = Path(shutil.copytree(model_dir, target))
        else:
            shutil.copytree(weights, target, copy_function=link_or_copy)
    return repo_dir


def link_or_copy(src: str, dst: str) -> None:
    """shutil.copytree's copy_function: a hard link (no second copy on disk), else a copy."""
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def publish_model_repository(repo_dir: Path, base_uri: str, *, version: int, instance_kind: str = "cpu") -> str:
    """Upload `repo_dir` to `<base_uri>/<version>/` and return that URI in the form tritonserver reads.

    One repository per registered version, so the Helm chart's `model.version` picks it and a rollback is a
    `helm rollback` to the previous value (charts/emotion-omni-triton reads `<base>/<version>`). The upload's
    config.pbtxt gets `instance_kind` ("gpu" for the chart's gpu profile); `repo_dir` itself is not changed.

    Each model's config.pbtxt goes up last: Triton loads no model directory without one, so an upload cut short
    (the object store went away) leaves nothing it would serve half-copied. Publishing the same repository again (a
    retried export step) writes the same keys and bytes.
    """
    from components.storage import parse_s3_uri, upload_directory

    repo_dir = Path(repo_dir)
    # Each model's config and each version's own copy of it, so the published versions agree with what serves them.
    paths = [path for name in MODELS for path in (repo_dir / name).glob(f"**/{CONFIG_FILE}")]
    configs = {path.relative_to(repo_dir): path.read_text() for path in paths}
    published = {rel: with_instance_kind(text, instance_kind) for rel, text in configs.items()}
    target = parse_s3_uri(base_uri).child(str(version))
    with tempfile.TemporaryDirectory() as tmp:
        staged = repo_dir
        if published != configs:  # stage a copy rather than edit the caller's (served) repository
            staged = Path(shutil.copytree(repo_dir, Path(tmp) / "repository"))
            for rel, text in published.items():
                (staged / rel).write_text(text)
        upload_directory(staged, target.uri, last=(CONFIG_FILE,))
    return target.uri
