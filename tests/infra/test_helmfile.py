"""helmfile.yaml: pinned chart versions from https repositories, values files that exist and parse, and the
kube-prometheus-stack settings the rest of the platform relies on."""
from __future__ import annotations

import re

import pytest

from tests.infra.manifests import BOOTSTRAP, HELMFILE, OWN_NAMESPACES, load_docs

HELMFILE_DATA = load_docs(HELMFILE)[0]
RELEASES = HELMFILE_DATA["releases"]
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")  # no ranges (~, ^, x, *), no pre-releases


def test_repositories_are_https():
    for repo in HELMFILE_DATA["repositories"]:
        assert repo["url"].startswith("https://"), f"repository {repo['name']}: {repo['url']}"


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["name"])
def test_release_pinned_to_a_known_repository(release):
    assert _EXACT_VERSION.match(str(release.get("version", ""))), f"{release['name']}: version {release.get('version')}"
    repo = release["chart"].split("/")[0]
    assert repo in {r["name"] for r in HELMFILE_DATA["repositories"]}, f"{release['name']}: unknown repository {repo}"
    assert release["namespace"] in OWN_NAMESPACES, f"{release['name']}: namespace not created by step 1"


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["name"])
def test_release_values_exist_and_parse(release):
    assert release.get("values"), f"{release['name']}: no values file"
    for entry in release["values"]:
        path = BOOTSTRAP / entry
        assert path.is_file(), f"{release['name']}: values file {path} is missing"
        (values,) = load_docs(path)
        assert isinstance(values, dict) and values, f"{path} is not a mapping"


def test_needs_name_existing_releases():
    names = {f"{r['namespace']}/{r['name']}" for r in RELEASES}
    for release in RELEASES:
        for need in release.get("needs", []):
            assert need in names, f"{release['name']} needs unknown release {need}"


def test_releases_wait_for_readiness():
    assert HELMFILE_DATA["helmDefaults"]["wait"] is True
    assert HELMFILE_DATA["helmDefaults"].get("createNamespace") is False  # step 1 owns the namespaces


def test_expected_releases():
    assert {r["chart"] for r in RELEASES} == {
        "prometheus-community/kube-prometheus-stack", "prometheus-community/prometheus-adapter"}


def test_prometheus_selects_monitors_from_every_namespace():
    """The Triton chart's ServiceMonitor/PrometheusRule carry no `release` label and live in namespace serving."""
    values = load_docs(BOOTSTRAP / "06-monitoring" / "kube-prometheus-stack.values.yaml")[0]
    spec = values["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues",
                "ruleSelectorNilUsesHelmValues"):
        assert spec[key] is False, key
    assert "adminPassword" not in values["grafana"]
