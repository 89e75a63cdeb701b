"""No credential is committed under infra/; bootstrap.sh (run against a recorded kubectl, recorded_cluster.py)
generates every one afresh per cluster, prints none, and creates every Secret our workloads read with the keys
they read (the pipeline's mlflow-credentials contract and the Triton chart's included); workloads take each
generated credential from a Secret, never from a literal."""

from __future__ import annotations

import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.infra.manifests import (
    BOOTSTRAP,
    HELMFILE,
    INFRA,
    PROJECT_ROOT,
    containers,
    load_docs,
    local_objects,
    workloads,
)
from tests.infra.recorded_cluster import RecordedCluster

# Keys whose values are names or addresses, the same in every cluster; every other key bootstrap.sh writes must
# be generated per cluster. The MinIO user names are fixed so the bucket policies can name them.
NOT_SECRET = frozenset(
    {
        "MLFLOW_ACCESS_KEY",
        "PIPELINES_ACCESS_KEY",
        "TRITON_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_S3_ENDPOINT_URL",
        "admin-user",
    }
)

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


@pytest.fixture(scope="module")
def second_cluster(tmp_path_factory):
    """The Secrets of a second, independent fresh cluster (the steps that create Secrets, about 4 s)."""
    cluster = RecordedCluster(tmp_path_factory.mktemp("second") / "cluster")
    run = cluster.run("namespaces", "pipelines", "minio", "mlflow", "monitoring")
    assert run.returncode == 0, run.output[-3000:]
    return cluster.secrets


def _generated(secrets):
    """(namespace, name, key, value) of every generated credential in `secrets`."""
    return [(ns, name, k, v) for (ns, name), data in secrets.items() for k, v in data.items() if k not in NOT_SECRET]


def test_credentials_are_generated_per_cluster(bootstrapped, second_cluster):
    """A literal (or a fixed default) in the script would give two clusters the same password."""
    first = bootstrapped.cluster.secrets
    assert set(first) == set(second_cluster)
    for namespace, name, key, value in _generated(first):
        assert value != second_cluster[(namespace, name)][key], f"{namespace}/{name} {key} is the same in two clusters"
    for (namespace, name), data in first.items():
        for key in NOT_SECRET & set(data):
            assert data[key] == second_cluster[(namespace, name)][key], f"{key} is listed as fixed but varies"


def test_credentials_appear_nowhere_but_in_their_secrets(bootstrapped, second_cluster):
    """Not in the script's output, not in any object it applies (piped manifests included), not in any tracked
    file: a generated value that shows up in git was not generated."""
    values = {value for *_, value in _generated(bootstrapped.cluster.secrets) + _generated(second_cluster)}
    run = bootstrapped.run
    applied = [call.stdin or "" for call in run.calls] + [repr(obj) for _, _, obj in local_objects()]
    for value in values:
        assert value not in run.output, "bootstrap.sh printed a credential"
        assert not [text for text in applied if value in text], "a credential is in an applied object"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, timeout=30)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = PROJECT_ROOT / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 5_000_000:
            content = path.read_bytes()
            assert not [v for v in values if v.encode() in content], f"{name} holds a generated credential"


def test_workloads_read_generated_credentials_from_secrets(bootstrapped):
    """Every env var named after a generated key takes it from a Secret (a literal value would be committed)."""
    generated = {key for *_, key, _ in _generated(bootstrapped.cluster.secrets)}
    checked = 0
    for label, pod, _, _ in workloads():
        for container in containers(pod):
            for env in container.get("env", []):
                if env["name"] in generated:
                    checked += 1
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{label}: {env['name']} is not from a Secret"
    assert checked, "no workload reads a generated credential through env: the check is empty"


def test_secret_contracts_of_our_workloads(bootstrapped):
    secrets = {key: set(data) for key, data in bootstrapped.cluster.secrets.items()}
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


def _service_url(step: str, name: str, port_name: str) -> str:
    """http://NAME.NAMESPACE.svc.cluster.local:PORT of a Service of infra/bootstrap/STEP."""
    (service,) = [
        (namespace, obj)
        for path, namespace, obj in local_objects()
        if path.parent.name == step and obj["kind"] == "Service" and obj["metadata"]["name"] == name
    ]
    namespace, obj = service
    (port,) = [p["port"] for p in obj["spec"]["ports"] if p["name"] == port_name]
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


def test_pipeline_secret_contract(bootstrapped):
    """The Secret ClusterSettings mounts into the MLflow steps (which run in kubeflow) points at the Services of
    steps 4 and 5."""
    from components.cluster.settings import ClusterSettings

    settings = ClusterSettings()
    secret = bootstrapped.cluster.secrets[("kubeflow", settings.mlflow_secret)]
    assert set(secret) == set(settings.mlflow_secret_keys), secret.keys()
    assert secret["MLFLOW_TRACKING_URI"] == _service_url("05-mlflow", "mlflow", "http")
    assert secret["MLFLOW_S3_ENDPOINT_URL"] == _service_url("04-minio", "minio", "api")


def test_mlflow_backend_store_is_the_postgres_service(bootstrapped):
    """The URI the server reads (Secret mlflow-server) reaches step 5's PostgreSQL as the user and database its
    StatefulSet creates, with the password its own Secret holds."""
    secrets = bootstrapped.cluster.secrets
    uri = urlsplit(secrets[("mlflow", "mlflow-server")]["MLFLOW_BACKEND_STORE_URI"])
    (postgres,) = [
        obj
        for _, _, obj in local_objects()
        if obj["metadata"]["name"] == "mlflow-postgres" and obj["kind"] == "StatefulSet"
    ]
    env = {
        e["name"]: e.get("value") for c in containers(postgres["spec"]["template"]["spec"]) for e in c.get("env", [])
    }
    assert uri.scheme == "postgresql+psycopg2"
    assert f"http://{uri.hostname}:{uri.port}" == _service_url("05-mlflow", "mlflow-postgres", "postgres")
    assert (uri.username, uri.path) == (env["POSTGRES_USER"], f"/{env['POSTGRES_DB']}")
    assert uri.password == secrets[("mlflow", "mlflow-postgres")]["POSTGRES_PASSWORD"]


def test_grafana_admin_secret_contract(bootstrapped):
    values = load_docs(BOOTSTRAP / "06-monitoring" / "kube-prometheus-stack.values.yaml")[0]["grafana"]["admin"]
    keys = set(bootstrapped.cluster.secrets[("monitoring", values["existingSecret"])])
    assert {values["userKey"], values["passwordKey"]} == keys
    assert any(r["namespace"] == "monitoring" for r in load_docs(HELMFILE)[0]["releases"])


def test_triton_chart_secret_contract(bootstrapped):
    """charts/emotion-omni-triton, installed in namespace serving, reads its S3 and admin keys from this Secret."""
    values_file = PROJECT_ROOT / "charts" / "emotion-omni-triton" / "values.yaml"
    if not values_file.exists():
        pytest.skip("charts/emotion-omni-triton is not in this checkout")
    values = yaml.safe_load(values_file.read_text())
    credentials = values["modelRepository"]["credentials"]
    secret = bootstrapped.cluster.secrets.get(("serving", credentials["existingSecret"]))
    assert secret is not None, f"bootstrap.sh does not create serving/{credentials['existingSecret']}"
    expected = {credentials[k] for k in ("accessKeyIdKey", "secretAccessKeyKey", "regionKey")}
    if not values["restrictedApi"].get("existingSecret"):
        expected.add(values["restrictedApi"]["secretKey"])
    assert expected <= set(secret), expected - set(secret)
