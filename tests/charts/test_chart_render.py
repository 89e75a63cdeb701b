"""The chart lints clean, renders fast, and every object of every scenario is valid for Kubernetes 1.31."""

from __future__ import annotations

import time

import helm_python as helm
import pytest

from tests.charts.rendering import (
    CHART_DIR,
    CRD_FILES,
    KUBE_VERSION,
    NAMESPACE,
    ci_scenarios,
    render,
    require_shared_crds,
    validate_object,
)

SCENARIOS = ci_scenarios()
DEFAULT_KINDS = [
    "ConfigMap",
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "Pod",
    "PodDisruptionBudget",
    "PrometheusRule",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
]


def test_ci_scenarios_exist():
    assert {"cpu-values.yaml", "gpu-values.yaml", "no-autoscaling-values.yaml"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_reports_no_errors_or_warnings(scenario):
    report = helm.lint(
        CHART_DIR, SCENARIOS[scenario], strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_is_valid(scenario):
    rendered = render(SCENARIOS[scenario])
    assert rendered.objects, "nothing rendered"
    # Built-in kinds first, so they are checked even where the vendored CRDs are absent (that skips the rest).
    objects = sorted(rendered.objects, key=lambda o: (o["apiVersion"], o["kind"]) in CRD_FILES)
    for obj in objects:
        validate_object(obj)
        assert obj["metadata"]["namespace"] == NAMESPACE, f"{obj['kind']} is not in the release namespace"


def test_default_render_has_every_object():
    assert render().kinds == DEFAULT_KINDS


def test_validation_is_strict():
    """A misspelled field must fail, for built-in kinds and for CRD kinds alike."""
    deployment = render().one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(pytest.fail.Exception, match="readinesProbe"):
        validate_object(deployment)
    with pytest.raises(pytest.fail.Exception, match="unknown kind"):
        validate_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    require_shared_crds()
    monitor = render().one("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "5s"
    with pytest.raises(pytest.fail.Exception, match="scrapeTimout"):
        validate_object(monitor)


def test_whole_chart_renders_in_well_under_a_second():
    render()  # warm: the first call loads the chart
    start = time.perf_counter()
    for values in SCENARIOS.values():
        render(values)
    per_render = (time.perf_counter() - start) / len(SCENARIOS)
    print(f"\nemotion-omni-triton: {per_render * 1000:.1f} ms per render ({len(SCENARIOS)} scenarios)")
    assert per_render < 1.0
