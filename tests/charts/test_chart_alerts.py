"""The chart's alert rules pass `promtool check rules` and the unit tests in tests/charts/promtool/, run on the rules
exactly as the chart renders them; the dashboard's and the adapter rule's PromQL parse too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts.rendering import render, rule_file

PROMTOOL = shutil.which("promtool")
PROMTOOL_TESTS = Path(__file__).parent / "promtool"
RULES_NAME = "alerts.rules.yaml"  # what the promtool test files list under rule_files

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not on PATH (Debian: apt-get install prometheus)")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def stage(tmp_path: Path, values: dict | None = None) -> list[str]:
    """Rendered rules + the unit-test files in one directory; returns the test file names."""
    rule_file(render(values), tmp_path / RULES_NAME)
    names = []
    for test in sorted(PROMTOOL_TESTS.glob("*.test.yaml")):
        shutil.copy(test, tmp_path / test.name)
        names.append(test.name)
    return names


def test_rendered_rules_pass_promtool_check(tmp_path):
    stage(tmp_path)
    result = promtool("check", "rules", RULES_NAME, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_rendered_rules_pass_promtool_unit_tests(tmp_path):
    tests = stage(tmp_path)
    result = promtool("test", "rules", *tests, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_follow_the_thresholds_in_values(tmp_path):
    """With a looser error-ratio threshold the firing case must fail: the tests see what values set."""
    tests = stage(tmp_path, {"prometheusRule": {"thresholds": {"errorRatio": 0.5}}})
    result = promtool("test", "rules", *tests, cwd=tmp_path)
    assert result.returncode != 0
    assert "EmotionOmniHighErrorRatio" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {r["alert"] for r in render().one("PrometheusRule")["spec"]["groups"][0]["rules"]}
    fires, quiet = set(), set()
    for path in PROMTOOL_TESTS.glob("*.test.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fires == alerts and quiet == alerts, f"untested: {(alerts - fires) | (alerts - quiet)}"


def test_dashboard_and_adapter_queries_parse(tmp_path):
    """Every dashboard target and the adapter's metricsQuery, as recording rules promtool can parse (the Grafana
    and adapter template variables replaced by what they expand to)."""
    rendered = render()
    configmaps = {cm["metadata"]["name"].rsplit("-", 1)[-1]: cm for cm in rendered.all("ConfigMap")}
    (dashboard_json,) = configmaps["dashboard"]["data"].values()
    exprs = [t["expr"] for p in json.loads(dashboard_json)["panels"] for t in p["targets"]]
    adapter = yaml.safe_load(configmaps["rules"]["data"]["rules.yaml"])["rules"][0]
    exprs.append(
        adapter["metricsQuery"]
        .replace("<<.GroupBy>>", "pod")
        .replace("<<.LabelMatchers>>", 'namespace="serving",pod="omni-a"')
    )
    rules = [{"record": f"check:query_{i}", "expr": e.replace("$__rate_interval", "1m")} for i, e in enumerate(exprs)]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = promtool("check", "rules", "queries.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adapter_query_is_queue_time_per_request_and_zero_when_idle(tmp_path):
    """The adapter's metricsQuery, expanded the way prometheus-adapter does for an HPA in namespace serving:
    a busy pod reads its microseconds per request, an idle pod 0 (not "no value")."""
    (cm,) = [cm for cm in render().all("ConfigMap") if cm["metadata"]["name"].endswith("-adapter-rules")]
    rule = yaml.safe_load(cm["data"]["rules.yaml"])["rules"][0]
    query = (
        rule["metricsQuery"]
        .replace("<<.GroupBy>>", "pod")
        .replace("<<.LabelMatchers>>", 'namespace="serving",pod=~"omni-a|omni-b"')
    )
    (tmp_path / "adapter.rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "adapter", "rules": [{"record": rule["name"]["as"], "expr": query}]}]})
    )
    labels = 'namespace="serving", service="omni-emotion-omni-triton", model="emotion_omni", version="1"'
    series = [  # 60 requests a minute queueing 60 000 us in all on omni-a; omni-b idle; another namespace ignored
        (f'nv_inference_queue_duration_us{{{labels}, pod="omni-a"}}', "0+60000x10"),
        (f'nv_inference_request_success{{{labels}, pod="omni-a"}}', "0+60x10"),
        (f'nv_inference_queue_duration_us{{{labels}, pod="omni-b"}}', "500x10"),
        (f'nv_inference_request_success{{{labels}, pod="omni-b"}}', "7x10"),
        ('nv_inference_queue_duration_us{namespace="other", pod="omni-a"}', "0+99999x10"),
        ('nv_inference_request_success{namespace="other", pod="omni-a"}', "0+1x10"),
    ]
    test = {
        "rule_files": ["adapter.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": rule["name"]["as"],
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": f'{rule["name"]["as"]}{{pod="omni-a"}}', "value": 1000},
                            {"labels": f'{rule["name"]["as"]}{{pod="omni-b"}}', "value": 0},
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "adapter.test.yaml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", "adapter.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
