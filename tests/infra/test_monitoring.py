"""The platform alerts (06-monitoring) are valid PromQL and fire when they should (promtool), and the MinIO
ServiceMonitor selects the MinIO Service it is meant to."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.manifests import local_objects

PROMTOOL_TESTS = Path(__file__).parent / "promtool"
_PROMTOOL = shutil.which("promtool")


def _objects(kind):
    return [(namespace, obj) for _, namespace, obj in local_objects() if obj["kind"] == kind]


@pytest.mark.skipif(_PROMTOOL is None, reason="promtool is not on PATH (infra/setup.sh installs it)")
def test_platform_alerts_with_promtool(tmp_path):
    ((_, rule),) = _objects("PrometheusRule")
    (tmp_path / "platform-alerts.rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(PROMTOOL_TESTS / "platform-alerts.test.yaml", tmp_path)
    for command in (["check", "rules", "platform-alerts.rules.yaml"], ["test", "rules", "platform-alerts.test.yaml"]):
        result = subprocess.run([_PROMTOOL, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_have_severity_and_summary():
    ((_, rule),) = _objects("PrometheusRule")
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
            assert alert["annotations"]["summary"], alert["alert"]


def test_minio_servicemonitor_selects_only_the_client_service():
    (monitor,) = [obj for _, obj in _objects("ServiceMonitor") if obj["metadata"]["name"] == "minio"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        (ns, obj)
        for ns, obj in _objects("Service")
        if ns in monitor["spec"]["namespaceSelector"]["matchNames"]
        and selector.items() <= obj["metadata"]["labels"].items()
    ]
    names = [obj["metadata"]["name"] for _, obj in services]
    assert names == ["minio"], f"{names}: exactly one Service, or MinIO is scraped twice"
    ((_, service),) = services
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def _pipeline_alerts():
    ((_, rule),) = _objects("PrometheusRule")
    return {
        alert["alert"]: alert
        for group in rule["spec"]["groups"]
        for alert in group["rules"]
        if alert["alert"].startswith("Pipeline")
    }


@pytest.mark.parametrize(
    "alert, metric, job, labels",
    [
        ("PipelineStepFailed", "step_success", "STEP_JOB", {"pipeline", "step", "lineage_id"}),
        ("PipelineGateFailed", "gate_passed", "GATE_JOB", {"pipeline", "lineage_id"}),
    ],
)
def test_pipeline_alerts_select_what_the_steps_push(alert, metric, job, labels):
    """The series and job names are those components/pipeline_metrics.py pushes, and the annotations use only the
    labels it pushes (tests/components/test_pipeline_metrics.py checks those on a real Pushgateway)."""
    from components import pipeline_metrics

    rule = _pipeline_alerts()[alert]
    assert f'{pipeline_metrics.PREFIX}_{metric}{{job="{getattr(pipeline_metrics, job)}"}} == 0' == rule["expr"]
    used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
    assert used and used <= labels, f"{alert} uses labels no push carries: {used - labels}"
    assert re.fullmatch(r"\d+m", rule["for"]), f"{alert}: a failure must persist before it notifies"
