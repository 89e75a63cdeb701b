"""helmfile.yaml: pinned chart versions from https repositories, values files that exist and parse, and the
kube-prometheus-stack settings the rest of the platform relies on."""

from __future__ import annotations

import re

import pytest

from components.pipeline_metrics import CLUSTER_URL
from tests.infra.manifests import BOOTSTRAP, HELMFILE, OWN_NAMESPACES, TRAINING_NAMESPACE, load_docs

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
        "prometheus-community/kube-prometheus-stack",
        "prometheus-community/prometheus-adapter",
        "prometheus-community/prometheus-pushgateway",
    }


def test_prometheus_selects_monitors_from_every_namespace():
    """The Triton chart's ServiceMonitor/PrometheusRule carry no `release` label and live in namespace serving."""
    values = load_docs(BOOTSTRAP / "06-monitoring" / "kube-prometheus-stack.values.yaml")[0]
    spec = values["prometheus"]["prometheusSpec"]
    for key in (
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False, key
    assert "adminPassword" not in values["grafana"]


# --- the Pushgateway the pipeline steps push to (components/pipeline_metrics.py) ------------------------------


def _pushgateway() -> tuple[dict, dict]:
    (release,) = [r for r in RELEASES if r["chart"] == "prometheus-community/prometheus-pushgateway"]
    (values,) = load_docs(BOOTSTRAP / release["values"][0])
    return release, values


def test_pushgateway_is_scraped_keeping_the_pushed_job():
    """The pipeline alerts select job="omni_pipeline_step" / "omni_pipeline_gate", the job each push sets: without
    honorLabels Prometheus would replace it with the gateway's own. The ServiceMonitor needs the operator's CRDs."""
    release, values = _pushgateway()
    assert values["serviceMonitor"]["enabled"] is True
    assert values["serviceMonitor"]["honorLabels"] is True
    assert "monitoring/kube-prometheus-stack" in release["needs"]


def test_pushgateway_url_is_the_one_the_steps_default_to():
    """The chart names its Service after the release when the release name contains the chart's name."""
    release, values = _pushgateway()
    assert "fullnameOverride" not in values and "nameOverride" not in values
    port = values.get("service", {}).get("port", 9091)  # the chart's default
    assert CLUSTER_URL == f"http://{release['name']}.{release['namespace']}.svc:{port}"


def test_pushgateway_keeps_the_latest_outcomes_across_restarts():
    """A restarted gateway without its state would forget a failed gate, and the alert would resolve unseen."""
    _, values = _pushgateway()
    assert values["persistentVolume"]["enabled"] is True
    mount = values["persistentVolume"].get("mountPath", "/data")  # the chart's default
    files = [arg.split("=", 1)[1] for arg in values["extraArgs"] if arg.startswith("--persistence.file=")]
    assert len(files) == 1 and files[0].startswith(mount + "/"), f"{files}: not on the volume at {mount}"


def test_pushgateway_accepts_only_the_pipeline_steps_and_prometheus():
    _, values = _pushgateway()
    allowed = {
        selector["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for selector in values["networkPolicy"]["customSelectors"]
    }
    assert allowed == {TRAINING_NAMESPACE, "monitoring"}
    context = values["containerSecurityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert values["resources"]["limits"]["memory"]
