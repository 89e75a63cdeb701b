"""Kustomizations point at files that exist and at upstream bases pinned to a release tag or commit."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.infra.manifests import PROJECT_ROOT, is_remote, kustomizations

KUSTOMIZATIONS = kustomizations()

# A release tag (v2.3.0, 2.17.1) or a full commit SHA; branch names such as master or main move.
_PINNED_REF = re.compile(r"^(v?\d+\.\d+\.\d+|[0-9a-f]{40})$")
# A release asset URL carries its version in the path: .../releases/download/v0.8.0/components.yaml
_PINNED_URL = re.compile(r"/releases/download/v?\d+\.\d+\.\d+/")


def remote_pin_problem(entry: str) -> str | None:
    """Why the remote kustomization resource `entry` is not pinned, or None when it is."""
    if _PINNED_URL.search(entry):
        return None
    refs = parse_qs(urlsplit(entry if "://" in entry else f"https://{entry}").query).get("ref", [])
    if not refs:
        return "has no ?ref= (it would follow the default branch)"
    if not _PINNED_REF.match(refs[0]):
        return f"ref {refs[0]!r} is not a release tag or commit SHA"
    return None


def _ids(k):
    return str(k.path.relative_to(PROJECT_ROOT))


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=_ids)
def test_local_resources_exist(kustomization):
    for resource in kustomization.local_resources:
        assert resource.exists(), f"{kustomization.path}: resource {resource} does not exist"
        if resource.is_dir():
            assert (resource / "kustomization.yaml").exists(), f"{resource} is a directory without kustomization.yaml"
    for generator in kustomization.data.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            path = kustomization.dir / entry.split("=", 1)[-1]
            assert path.is_file(), f"{kustomization.path}: configMapGenerator file {path} does not exist"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=_ids)
def test_remote_resources_are_pinned(kustomization):
    for entry in kustomization.remote_resources:
        problem = remote_pin_problem(entry)
        assert problem is None, f"{kustomization.path}: {entry} {problem}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=_ids)
def test_no_secret_generators(kustomization):
    assert "secretGenerator" not in kustomization.data, (
        f"{kustomization.path}: Secrets are created by the operator (bootstrap.sh), never generated from the repo"
    )


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("github.com/kubeflow/trainer/manifests/overlays/manager?ref=v2.3.0", None),
        ("github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=2.17.1", None),
        ("https://github.com/org/repo//path?ref=" + "a" * 40, None),
        ("https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.0/components.yaml", None),
        ("github.com/kubeflow/trainer/manifests/overlays/manager?ref=master", "not a release tag"),
        ("github.com/kubeflow/trainer/manifests/overlays/manager", "has no ?ref="),
        ("https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml", "has no ?ref="),
    ],
)
def test_pin_check(entry, problem):
    assert is_remote(entry)
    found = remote_pin_problem(entry)
    assert (found is None) if problem is None else (problem in found)


def _remote(fragment):
    return [entry for k in KUSTOMIZATIONS for entry in k.remote_resources if fragment in entry]


def test_upstream_components_and_versions():
    """KFP standalone (platform-agnostic) and Trainer v2 (not the v1 training-operator), each at one version."""
    pipelines = _remote("github.com/kubeflow/pipelines/")
    assert any("/env/platform-agnostic?" in entry for entry in pipelines)
    assert any("/cluster-scoped-resources?" in entry for entry in pipelines)
    assert len({entry.split("?ref=")[1] for entry in pipelines}) == 1, pipelines
    trainer = _remote("github.com/kubeflow/trainer/")
    assert any("/overlays/manager?" in entry for entry in trainer)
    assert any("/overlays/runtimes?" in entry for entry in trainer)
    assert len({entry.split("?ref=")[1] for entry in trainer}) == 1, trainer
    assert trainer[0].split("?ref=")[1].startswith("v2."), "Kubeflow Trainer v2 is the supported operator"
    assert not _remote("training-operator"), "the v1 training-operator (PyTorchJob) is not used"
