"""Live training metrics: the headless Service and ServiceMonitor (06-monitoring/training) scrape rank 0 of a
TrainJob on the port and pod label the launcher uses, and the Grafana dashboard reads only the metrics rank 0
serves. test_manifests validates both objects (and the generated dashboard ConfigMap) like every other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from components.cluster import trainjob_spec  # the launcher's names (a light import: no torch, no kubernetes)
from tests.infra.manifests import (
    BOOTSTRAP,
    TRAINING_NAMESPACE,
    kustomizations,
    load_docs,
    local_objects,
)

MONITORING = BOOTSTRAP / "06-monitoring"
DASHBOARD = MONITORING / "dashboard-training.json"
TRAINING = MONITORING / "training"
_PROMTOOL = shutil.which("promtool")

# What rank 0 serves (components/training/metrics.py); every series carries the labels run and stage.
METRICS = frozenset(
    {
        "omni_train_step",
        "omni_train_total_steps",
        "omni_train_loss",
        "omni_train_learning_rate",
        "omni_train_samples_per_second",
        "omni_train_tokens_per_second",
        "omni_train_achieved_tflops",
        "omni_train_mfu",
        "omni_train_memory_bytes",
        "omni_train_checkpoint_step",
    }
)


def _one(kind: str) -> tuple[str | None, dict[str, Any]]:
    (found,) = [(ns, obj) for path, ns, obj in local_objects() if obj["kind"] == kind and path.parent == TRAINING]
    return found


# --- Service and ServiceMonitor ---------------------------------------------------------------------------------


def test_service_selects_the_trainer_pods_on_the_metrics_port():
    namespace, service = _one("Service")
    assert namespace == TRAINING_NAMESPACE
    assert service["spec"]["clusterIP"] == "None", "headless: Prometheus scrapes pods, nothing load-balances"
    assert service["spec"]["selector"] == dict([trainjob_spec.TRAIN_METRICS_LABEL])
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    # Numeric: the TrainJob CRD cannot name container ports.
    assert port["targetPort"] == trainjob_spec.TRAIN_METRICS_PORT == 9400


def test_servicemonitor_selects_the_service_and_its_port():
    service_namespace, service = _one("Service")
    namespace, monitor = _one("ServiceMonitor")
    # Without a namespaceSelector a ServiceMonitor looks in its own namespace.
    watched = monitor["spec"].get("namespaceSelector", {}).get("matchNames", [namespace])
    assert watched == [service_namespace]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")


def _meta(label: str) -> str:
    """The discovery label Prometheus gives a pod label."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' keep and replace relabeling: the target's labels afterwards, or None when it is dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["sourceLabels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace").lower()
        if action == "keep" and not match:
            return None
        if action == "replace" and match:
            labels[rule["targetLabel"]] = match.expand(rule.get("replacement", "$1").replace("$", "\\"))
        assert action in {"keep", "replace"}, f"relabel() does not model action {action}"
    return labels


@pytest.mark.parametrize("job_index, node_rank, scraped", [("0", "0", True), ("0", "1", False), ("1", "0", False)])
def test_servicemonitor_keeps_only_the_rank_0_pod(job_index, node_rank, scraped):
    """The Trainer runs all nodes as the pods of one Indexed Job (JobSet job index 0): the node rank is the pod's
    completion index (components/cluster/trainjob_spec.py NODE_INDEX_LABEL), and only node 0 listens."""
    _, monitor = _one("ServiceMonitor")
    pod = {
        _meta("jobset.sigs.k8s.io/job-index"): job_index,
        _meta(trainjob_spec.NODE_INDEX_LABEL): node_rank,
        _meta(trainjob_spec.JOBSET_NAME_LABEL): "emotion-omni-train-1a2b3c",
    }
    target = relabel(pod, monitor["spec"]["endpoints"][0]["relabelings"])
    if scraped:
        assert target is not None and target["trainjob"] == "emotion-omni-train-1a2b3c"
    else:
        assert target is None


# --- dashboard --------------------------------------------------------------------------------------------------

# PromQL clauses that list label names, not metrics.
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: the identifiers left once strings, label matchers, ranges and
    label lists are removed, other than functions (followed by '(') and keywords."""
    expr = re.sub(r'"(\\.|[^"\\])*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = _LABEL_LISTS.sub("", expr)
    return {name for name in re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr) if name not in _KEYWORDS}


@pytest.mark.parametrize(
    "expr, names",
    [
        (
            '100 * max by (stage) (omni_train_step{run="$run"}) / max by (stage) (omni_train_total_steps{run="$run"})',
            {"omni_train_step", "omni_train_total_steps"},
        ),
        ('rate(foo_total{part="a{b}", run=~"x"}[5m]) > bool 0', {"foo_total"}),
        ("sum without (pod) (bar) / on (run) group_left (stage) baz", {"bar", "baz"}),
    ],
)
def test_metric_names(expr, names):
    assert metric_names(expr) == names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_dashboard_reads_only_the_served_metrics_of_the_chosen_run():
    board = dashboard()
    assert board["title"] == "Emotion Omni training"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["run"]["query"] == "label_values(omni_train_step, run)"
    used = set()
    for expr in expressions():
        names = metric_names(expr)
        assert names and names <= METRICS, f"{expr!r} reads {names - METRICS or 'no metric'}"
        assert expr.count('run="$run"') == len(re.findall(r"\bomni_train_\w+\{", expr)), (
            f"{expr!r}: every selector filters on the chosen run"
        )
        used |= names
    assert used == METRICS, f"served but not shown: {METRICS - used}"


@pytest.mark.skipif(_PROMTOOL is None, reason="promtool is not on PATH (infra/setup.sh installs it)")
def test_dashboard_queries_parse_with_promtool(tmp_path):
    rules = [{"record": f"check:query_{i}", "expr": expr.replace("$run", "r")} for i, expr in enumerate(expressions())]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(
        [_PROMTOOL, "check", "rules", "queries.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- how it is applied ------------------------------------------------------------------------------------------


def test_bootstrap_applies_the_training_scrape(bootstrapped):
    """Step 6 applies it once step 2 has created the training namespace (test_bootstrap_script.py: and skips it,
    saying so, without)."""
    applied = bootstrapped.run.applied()
    assert TRAINING.relative_to(BOOTSTRAP).as_posix() in applied
    assert applied.index(TRAINING.relative_to(BOOTSTRAP).as_posix()) > applied.index("02-kubeflow-pipelines")


def test_kustomizations_apply_the_files():
    found = {k.dir: k for k in kustomizations()}
    training, monitoring = found[TRAINING], found[MONITORING]
    assert training.namespace == TRAINING_NAMESPACE and training.resources == ["trainjob-metrics.yaml"]
    (generator,) = [g for g in monitoring.data["configMapGenerator"] if g["files"][0].endswith(DASHBOARD.name)]
    assert generator["files"] == [f"emotion-omni-training.json={DASHBOARD.name}"]
    # The label kube-prometheus-stack's Grafana sidecar looks for (the chart's default, unless our values set one).
    values = load_docs(MONITORING / "kube-prometheus-stack.values.yaml")[0]
    label = values["grafana"]["sidecar"]["dashboards"].get("label", "grafana_dashboard")
    assert generator["options"]["labels"] == {label: "1"}
    assert generator["options"]["disableNameSuffixHash"] is True, "a hashed name leaves old copies behind"
