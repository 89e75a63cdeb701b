"""No credential is committed under infra/, and every Secret our workloads read is one bootstrap.sh creates,
with the keys they read (the pipeline's mlflow-credentials contract and the Triton chart's included)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.infra.manifests import (
    BOOTSTRAP,
    HELMFILE,
    INFRA,
    PROJECT_ROOT,
    containers,
    load_docs,
    workloads,
)

SCRIPT = BOOTSTRAP / "bootstrap.sh"

# Names of env vars / mapping keys that hold a credential when given a literal value.
_CREDENTIAL_NAME = re.compile(
    r"(password|passwd|secret|token|access_?key|private_?key|api_?key|credential)", re.IGNORECASE
)
_CREDENTIAL_KEY = re.compile(
    r"(password|passwd|secret_?access_?key|secret_?key|access_?key_?id|api_?key|token)$", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.\-]*://[^/\s:@]+:([^/\s@]+)@", re.IGNORECASE)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def _is_reference(value: str) -> bool:
    """$(VAR) / ${VAR} / $VAR: filled in at run time, not a committed value."""
    return value.startswith("$")


def credential_problems(doc: Any, where: str) -> list[str]:
    """Committed credentials in one YAML document: Secrets with data, literal credential env vars or keys,
    passwords in URLs, private keys, AWS key ids."""
    problems = []
    if isinstance(doc, dict) and doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
        problems.append(f"{where}: Secret {doc.get('metadata', {}).get('name')} carries data")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and "value" in node and _CREDENTIAL_NAME.search(node["name"]):
                problems.append(f"{where}{path}: env {node['name']} has a literal value; use valueFrom.secretKeyRef")
            for key, value in node.items():
                if isinstance(value, str) and value and _CREDENTIAL_KEY.search(str(key)) and not _is_reference(value):
                    problems.append(f"{where}{path}.{key}: literal credential")
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
        elif isinstance(node, str):
            match = _URL_PASSWORD.search(node)
            if match and not _is_reference(match.group(1)):
                problems.append(f"{where}{path}: URL with a password")
            if _PRIVATE_KEY.search(node) or _AWS_KEY_ID.search(node):
                problems.append(f"{where}{path}: private key or AWS access key id")

    walk(doc, "")
    return problems


INFRA_YAML = sorted(p for p in INFRA.rglob("*") if p.suffix in {".yaml", ".yml"})


@pytest.mark.parametrize("path", INFRA_YAML, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_committed_credentials_in_yaml(path):
    problems = [p for doc in load_docs(path) for p in credential_problems(doc, path.name)]
    assert not problems, problems


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}, "carries data"),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}}, "carries data"),
        ({"env": [{"name": "MINIO_ROOT_PASSWORD", "value": "hunter2"}]}, "literal value"),
        ({"grafana": {"adminPassword": "prom-operator"}}, "literal credential"),
        ({"uri": "postgresql+psycopg2://mlflow:hunter2@db/mlflow"}, "URL with a password"),
        ({"key": "AKIAABCDEFGHIJKLMNOP"}, "AWS access key id"),
    ],
)
def test_credential_scan_flags(doc, expected):
    problems = credential_problems(doc, "x")
    assert problems and expected in problems[0]


@pytest.mark.parametrize(
    "doc",
    [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"},
        {"env": [{"name": "MINIO_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"admin": {"existingSecret": "grafana-admin", "passwordKey": "admin-password"}},
        {"args": ["--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)"], "url": "http://minio.minio.svc:9000"},
    ],
)
def test_credential_scan_passes(doc):
    assert credential_problems(doc, "x") == []


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def created_secrets() -> dict[tuple[str, str], set[str]]:
    """(namespace, name) -> keys, for every `create_secret NAMESPACE NAME "KEY=VALUE"...` in bootstrap.sh."""
    secrets = {}
    for line in _logical_lines(SCRIPT.read_text()):
        match = re.match(r"\s*create_secret (\S+) (\S+) (.+)$", line)
        if match and not match.group(1).startswith("$"):
            secrets[(match.group(1), match.group(2))] = set(re.findall(r'"([A-Za-z_][\w-]*)=', match.group(3)))
    return secrets


# Secret values (as opposed to identifiers such as a MinIO user name or an access key id).
_SECRET_VALUE_NAME = re.compile(r"(password|passwd|secret|token|private|admin_key)", re.IGNORECASE)


def shell_credential_problems(text: str, where: str) -> list[str]:
    """KEY=VALUE pairs of create_secret calls and --from-literal flags whose secret value is written literally
    (rather than generated, or read from a variable, at run time)."""
    problems = []
    for line in _logical_lines(text):
        if "create_secret " not in line and "--from-literal" not in line:
            continue
        pairs = re.findall(r'"([A-Za-z_][\w-]*)=([^"]*)"', line)
        pairs += [(k, v.strip('"')) for k, v in re.findall(r'--from-literal=([A-Za-z_][\w-]*)=("[^"]*"|\S+)', line)]
        for key, value in pairs:
            if _SECRET_VALUE_NAME.search(key) and not _is_reference(value):
                problems.append(f"{where}: {key} is given a literal value")
            password = _URL_PASSWORD.search(value)
            if password and not _is_reference(password.group(1)):
                problems.append(f"{where}: {key} holds a URL with a literal password")
    return problems


@pytest.mark.parametrize("path", [SCRIPT, BOOTSTRAP / "README.md"], ids=lambda p: p.name)
def test_documented_secrets_are_generated(path):
    assert not shell_credential_problems(path.read_text(), path.name)


@pytest.mark.parametrize(
    "text, flagged",
    [
        ('create_secret mlflow mlflow-postgres "POSTGRES_PASSWORD=$db_password"', False),
        ('kubectl create secret generic x --from-literal=MINIO_ROOT_PASSWORD="$(openssl rand -hex 24)"', False),
        ('create_secret minio minio-users "MLFLOW_ACCESS_KEY=mlflow" "MLFLOW_SECRET_KEY=$s"', False),
        ('create_secret mlflow mlflow-postgres "POSTGRES_PASSWORD=hunter2"', True),
        ("kubectl create secret generic x --from-literal=admin-password=hunter2", True),
        ('create_secret m s "URI=postgresql://mlflow:hunter2@db/mlflow"', True),
    ],
)
def test_shell_credential_scan(text, flagged):
    assert bool(shell_credential_problems(text, "x")) is flagged


def test_secret_contracts_of_our_workloads():
    secrets = created_secrets()
    for label, pod, namespace, _ in workloads():
        for container in containers(pod):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    keys = secrets.get((namespace, ref["name"]))
                    assert keys is not None, f"{label}: Secret {namespace}/{ref['name']} is not created by bootstrap.sh"
                    assert ref["key"] in keys, f"{label}: Secret {ref['name']} has no key {ref['key']}"
            for source in container.get("envFrom", []):
                name = source["secretRef"]["name"]
                assert (namespace, name) in secrets, f"{label}: Secret {namespace}/{name} is not created"


def test_pipeline_secret_contract():
    """The Secret pipelines/emotion_omni.py ClusterSettings mounts into the MLflow steps (which run in kubeflow)."""
    from pipelines.emotion_omni import ClusterSettings

    settings = ClusterSettings()
    keys = created_secrets().get(("kubeflow", settings.mlflow_secret))
    assert keys == set(settings.mlflow_secret_keys), keys
    text = SCRIPT.read_text()
    assert '"MLFLOW_TRACKING_URI=$MLFLOW_URI"' in text
    assert 'MLFLOW_URI="http://mlflow.mlflow.svc.cluster.local:5000"' in text


def test_grafana_admin_secret_contract():
    values = load_docs(BOOTSTRAP / "06-monitoring" / "kube-prometheus-stack.values.yaml")[0]["grafana"]["admin"]
    keys = created_secrets()[("monitoring", values["existingSecret"])]
    assert {values["userKey"], values["passwordKey"]} == keys
    assert any(r["namespace"] == "monitoring" for r in load_docs(HELMFILE)[0]["releases"])


def test_triton_chart_secret_contract():
    """charts/emotion-omni-triton, installed in namespace serving, reads its S3 and admin keys from this Secret."""
    values_file = PROJECT_ROOT / "charts" / "emotion-omni-triton" / "values.yaml"
    if not values_file.exists():
        pytest.skip("charts/emotion-omni-triton is not in this checkout")
    values = yaml.safe_load(values_file.read_text())
    credentials = values["modelRepository"]["credentials"]
    keys = created_secrets().get(("serving", credentials["existingSecret"]))
    assert keys is not None, f"bootstrap.sh does not create serving/{credentials['existingSecret']}"
    expected = {credentials[k] for k in ("accessKeyIdKey", "secretAccessKeyKey", "regionKey")}
    if not values["restrictedApi"].get("existingSecret"):
        expected.add(values["restrictedApi"]["secretKey"])
    assert expected <= keys, expected - keys
