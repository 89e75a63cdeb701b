"""Bad values fail with the key in the message (values.schema.json first, then the templates' cross-field
`fail`s with the fix); and values.yaml documents every key it sets."""

from __future__ import annotations

import json
import re

import helm_python as helm
import pytest

from tests.charts.rendering import CHART_DIR, render

# (values, substrings the error must contain). Schema errors name the key as a JSON path (Helm prints
# "at '/service/ports/http': ..."); template failures name it as a dotted key and say "Fix:".
SCHEMA_ERRORS = {
    "negative replicas": ({"replicaCount": -1}, ["/replicaCount", "minimum"]),
    "port as a string": ({"service": {"ports": {"http": "8000"}}}, ["/service/ports/http", "want integer"]),
    "plaintext secret key": (
        {"modelRepository": {"credentials": {"secretAccessKey": "minio123"}}},
        ["/modelRepository/credentials", "'secretAccessKey' not allowed"],
    ),
    "credentials in the URI": (
        {"modelRepository": {"uri": "s3://admin:minio123@minio:9000/models"}},
        ["/modelRepository/uri", "does not match pattern"],
    ),
    "unknown top-level key": ({"replicas": 3}, ["additional properties 'replicas' not allowed"]),
    "unknown nested key": ({"autoscaling": {"targetCPU": 50}}, ["/autoscaling", "'targetCPU' not allowed"]),
    "model version 0": ({"model": {"version": 0}}, ["/model/version", "minimum"]),
    "model version as text": ({"model": {"version": "latest"}}, ["/model/version", "want integer"]),
    "unknown profile": ({"profile": "tpu"}, ["/profile", "'cpu', 'gpu'"]),
    "repository API left open": ({"restrictedApi": {"apis": ["trace"]}}, ["/restrictedApi/apis"]),
    "root user": ({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser", "minimum"]),
    "bad image digest": ({"image": {"digest": "latest"}}, ["/image/digest"]),
    "deployer namespace not a DNS label": (
        {"networkPolicy": {"deployer": {"namespace": "Kubeflow"}}},
        ["/networkPolicy/deployer/namespace", "does not match pattern"],
    ),
}

TEMPLATE_ERRORS = {
    "gpu profile without a count": ({"profile": "gpu"}, ["gpu.count=0", "profile=gpu", "--set gpu.count=1"]),
    "gpus on a cpu profile": ({"gpu": {"count": 2}}, ["gpu.count=2", "profile=cpu"]),
    "gpus in resources": (
        {"profile": "gpu", "gpu": {"count": 1}, "resources": {"limits": {"nvidia.com/gpu": 1}}},
        ["resources.limits.nvidia.com/gpu"],
    ),
    "hpa min above max": (
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}},
        ["autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"],
    ),
    # null deletes a default key, as with `--set resources.requests.cpu=null`.
    "hpa without a cpu request": ({"resources": {"requests": {"cpu": None}}}, ["resources.requests.cpu"]),
    "plaintext credential in extraEnv": (
        {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "minio123"}]},
        ["extraEnv[0]", "AWS_SECRET_ACCESS_KEY", "plaintext"],
    ),
    "grace period shorter than the drain": (
        {"rollout": {"terminationGracePeriodSeconds": 40}},
        ["rollout.terminationGracePeriodSeconds=40", "= 45"],
    ),
    "grace period equal to the drain": (
        {"rollout": {"terminationGracePeriodSeconds": 45}},
        ["rollout.terminationGracePeriodSeconds=45", "must exceed", "= 45"],
    ),
    "rollout that cannot progress": ({"rollout": {"maxSurge": 0, "maxUnavailable": 0}}, ["rollout.maxSurge"]),
    "both pdb fields": (
        {"podDisruptionBudget": {"minAvailable": 1}},
        ["podDisruptionBudget.maxUnavailable=1", "podDisruptionBudget.minAvailable=1"],
    ),
    "overriding model control": (
        {"triton": {"extraArgs": ["--model-control-mode=poll"]}},
        ["triton.extraArgs[0]", "--model-control-mode"],
    ),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS)
def test_schema_refuses_bad_values_naming_the_key(case):
    values, expected = SCHEMA_ERRORS[case]
    with pytest.raises(helm.HelmValuesError) as err:
        render(values)
    for text in expected:
        assert text in str(err.value), str(err.value)


@pytest.mark.parametrize("case", TEMPLATE_ERRORS)
def test_cross_field_rules_fail_with_key_and_fix(case):
    values, expected = TEMPLATE_ERRORS[case]
    with pytest.raises(helm.HelmRenderError) as err:
        render(values)
    message = str(err.value)
    for text in expected:
        assert text in message, message
    assert "Fix:" in message


def test_plaintext_values_never_reach_a_manifest():
    """A Secret reference in extraEnv is fine; its value stays out of the manifests."""
    rendered = render(
        {
            "extraEnv": [
                {"name": "AWS_SESSION_TOKEN_FILE", "value": "/var/run/token"},
                {"name": "OMNI_LOG", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ]
        }
    )
    env = [e["name"] for e in rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert env[-2:] == ["AWS_SESSION_TOKEN_FILE", "OMNI_LOG"]


def test_schema_is_draft_07_and_closed_at_every_chart_owned_level():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "")


def _values_keys_and_comments():
    """(dotted key, whether a comment sits directly above it) for each mapping key in values.yaml, down to the
    keys the chart reads; below those the values are Kubernetes objects passed through as they are."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    stack: list[tuple[int, str, dict]] = []  # (indent, key, schema node of that key)
    previous = ""
    for line in (CHART_DIR / "values.yaml").read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z0-9_.\-/]+):", line)
        if match and not line.lstrip().startswith("- "):
            indent, key = len(match.group(1)), match.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][2] if stack else schema
            node = parent.get("properties", {}).get(key) if parent is not None else None
            if parent is not None and "properties" in parent:  # a chart-owned key (not inside a k8s object)
                yield ".".join([k for _, k, _ in stack] + [key]), previous.lstrip().startswith("#")
            if node is not None and "$ref" in node:
                node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
            stack.append((indent, key, node))
        if line.strip():
            previous = line


def test_values_yaml_documents_every_key_and_the_schema_knows_it():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    keys = dict(_values_keys_and_comments())
    assert set(schema["properties"]) - {"global"} <= set(keys), "schema keys missing from values.yaml"
    undocumented = [key for key, commented in keys.items() if not commented]
    assert not undocumented, f"values.yaml keys without a comment above them: {undocumented}"
    render()  # and the documented defaults pass the schema
