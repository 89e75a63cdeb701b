"""The prometheus-adapter rule behind the Triton HPA: triton_queue_time_per_request_us, a Pods metric whose
queries carry no namespace of their own, checked for shape here and for its numbers with promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap

import pytest
import yaml

from tests.infra.manifests import BOOTSTRAP, TRITON_QUEUE_METRIC, load_docs

ADAPTER_VALUES = load_docs(BOOTSTRAP / "06-monitoring" / "prometheus-adapter.values.yaml")[0]
_PROMTOOL = shutil.which("promtool")


def queue_rule() -> dict:
    (rule,) = [r for r in ADAPTER_VALUES["rules"]["custom"] if r["name"]["as"] == TRITON_QUEUE_METRIC]
    return rule


def test_rule_exposes_the_metric_from_tritons_counters():
    rule = queue_rule()
    assert re.fullmatch(rule["name"]["matches"], "nv_inference_queue_duration_us")
    assert rule["seriesQuery"].startswith("nv_inference_queue_duration_us{")
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]


def test_rule_is_namespace_templated():
    """The HPA's namespace and pods arrive through <<.LabelMatchers>>; no query names a namespace itself."""
    rule = queue_rule()
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    query = rule["metricsQuery"]
    assert query.count("<<.LabelMatchers>>") == query.count("{"), "every selector takes the HPA's label matchers"
    assert "by (<<.GroupBy>>)" in query
    for text in (rule["seriesQuery"], query):
        assert not re.search(r'namespace\s*=~?\s*"[^"]', text), f"hard-coded namespace in {text!r}"


def test_adapter_queries_the_operators_prometheus():
    assert ADAPTER_VALUES["prometheus"]["url"] == "http://prometheus-operated.monitoring.svc"
    assert ADAPTER_VALUES["rules"]["default"] is False


def render(query: str, namespace: str, pods: list[str]) -> str:
    """The query as the adapter sends it for a Pods metric request from an HPA in `namespace`."""
    return (
        query.replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~"{"|".join(pods)}"')
        .replace("<<.GroupBy>>", "pod")
        .replace("<<.Series>>", "nv_inference_queue_duration_us")
    )


@pytest.mark.skipif(_PROMTOOL is None, reason="promtool is not on PATH (infra/setup.sh installs it)")
def test_query_values_with_promtool(tmp_path):
    """A busy pod reports queue µs per request; an idle pod reports 0 (not nothing); other namespaces are
    ignored. Counters grow by 60000 µs and 60 requests per minute on triton-0: 1000 µs per request."""
    query = render(queue_rule()["metricsQuery"], "serving", ["triton-0", "triton-1"])
    rules = {"groups": [{"name": "adapter", "rules": [{"record": TRITON_QUEUE_METRIC, "expr": query}]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    labels = 'namespace="{ns}",pod="{pod}",model="emotion_omni",version="1"'
    series = [
        ("nv_inference_queue_duration_us", "serving", "triton-0", "0+60000x10"),
        ("nv_inference_request_success", "serving", "triton-0", "0+60x10"),
        ("nv_inference_queue_duration_us", "serving", "triton-1", "500x10"),
        ("nv_inference_request_success", "serving", "triton-1", "7x10"),
        ("nv_inference_queue_duration_us", "other", "triton-0", "0+99999x10"),
        ("nv_inference_request_success", "other", "triton-0", "0+1x10"),
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{name}{{{labels.format(ns=ns, pod=pod)}}}", "values": values}
                    for name, ns, pod, values in series
                ],
                "promql_expr_test": [
                    {
                        "expr": TRITON_QUEUE_METRIC,
                        "eval_time": "8m",
                        "exp_samples": [
                            {"labels": f'{TRITON_QUEUE_METRIC}{{pod="triton-0"}}', "value": 1000},
                            {"labels": f'{TRITON_QUEUE_METRIC}{{pod="triton-1"}}', "value": 0},
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    checked = subprocess.run(
        [_PROMTOOL, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [_PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, textwrap.shorten(tested.stdout + tested.stderr, 4000)


def test_bootstrap_verifies_the_same_metric(bootstrapped):
    """`bootstrap.sh verify` (run by `all`) tells the operator how to read the metric the HPA scales on."""
    path = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/serving/pods/*/{TRITON_QUEUE_METRIC}"
    assert f"kubectl get --raw '{path}'" in bootstrapped.run.stdout
