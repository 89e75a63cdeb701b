"""The cluster bootstrap (infra/bootstrap, infra/kind) as data, and strict offline validation of its objects.

    for path, obj in local_objects():        # every object our kustomizations apply from local files
        validate_object(obj)                  # kubernetes-validate (strict) or the vendored CRD schema
    for where, pod in pod_specs(obj): ...     # the pod templates inside Deployments, Jobs, training runtimes

Built-in kinds are validated by kubernetes-validate in strict mode (unknown fields are errors) for every
version in KUBE_VERSIONS; ClusterTrainingRuntime, ServiceMonitor and PrometheusRule by jsonschema against the
served version of the CRDs vendored in ../shared/schemas/crds, made strict the same way. Any other kind is an
error unless NOT_VALIDATED names it with a reason.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"
BOOTSTRAP = INFRA / "bootstrap"
KIND_CONFIG = INFRA / "kind" / "kind-config.yaml"
HELMFILE = BOOTSTRAP / "helmfile.yaml"
SHARED_CRDS = PROJECT_ROOT.parent / "shared" / "schemas" / "crds"

# The oldest Kubernetes the bootstrap supports (Kubeflow Trainer v2.3's minimum) and the kind node image's.
KUBE_VERSIONS = ("1.31", "1.34")

# The namespaces step 1 creates, and those the upstream manifests of steps 2 and 3 create.
OWN_NAMESPACES = frozenset({"minio", "mlflow", "monitoring", "serving"})
UPSTREAM_NAMESPACES = frozenset({"kubeflow", "kubeflow-system"})
# Where standalone KFP runs pipelines, so where the train step creates its TrainJobs (README, steps 2 and 3).
TRAINING_NAMESPACE = "kubeflow"

# Kinds served by CRDs, and the vendored file holding each definition.
CRD_FILES = {
    ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"): "trainer.kubeflow.org_clustertrainingruntimes.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}

# (apiVersion, kind) -> why no schema checks it. Empty: every kind we apply is validated.
NOT_VALIDATED: dict[tuple[str, str], str] = {}

# The prometheus-adapter metric the Triton chart's HPA scales on.
TRITON_QUEUE_METRIC = "triton_queue_time_per_request_us"

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader reads the 680 KB CRD in ms


def load_docs(path: Path) -> list[Any]:
    """The non-empty YAML documents of `path`."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_YAML_LOADER) if doc is not None]


def yaml_files() -> list[Path]:
    """Every YAML file under infra/bootstrap and infra/kind."""
    return sorted(
        p for root in (BOOTSTRAP, KIND_CONFIG.parent) for p in root.rglob("*") if p.suffix in {".yaml", ".yml"}
    )


# --- kustomizations ----------------------------------------------------------------------------------------

_REMOTE = re.compile(r"^(https?://|git@|ssh://|github\.com/|gitlab\.com/|bitbucket\.org/)")


def is_remote(entry: str) -> bool:
    """Whether a kustomization resource is fetched from the network (git base or URL) rather than a local path."""
    return bool(_REMOTE.match(entry))


@dataclass
class Kustomization:
    path: Path
    data: dict[str, Any]

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def resources(self) -> list[str]:
        return list(self.data.get("resources") or [])

    @property
    def local_resources(self) -> list[Path]:
        return [self.dir / entry for entry in self.resources if not is_remote(entry)]

    @property
    def remote_resources(self) -> list[str]:
        return [entry for entry in self.resources if is_remote(entry)]

    @property
    def namespace(self) -> str | None:
        return self.data.get("namespace")


def kustomizations() -> list[Kustomization]:
    """Every kustomization.yaml under infra/."""
    return [Kustomization(p, load_docs(p)[0]) for p in sorted(INFRA.rglob("kustomization.yaml"))]


def local_objects() -> list[tuple[Path, str | None, dict[str, Any]]]:
    """(file, namespace the kustomization puts it in, object) for every object of a local resource file."""
    found = []
    for kustomization in kustomizations():
        for resource in kustomization.local_resources:
            if resource.is_file():
                found += [(resource, kustomization.namespace, doc) for doc in load_docs(resource)]
    return found


# --- validation --------------------------------------------------------------------------------------------

# Go's regexp allows inline flags after ^ ("^(?i)(abort|warn)?$" in the PrometheusRule CRD); Python needs them
# first.
_GO_INLINE_FLAGS = re.compile(r"^\^\(\?([a-zA-Z]+)\)")


def _strict(schema: Any) -> Any:
    """`schema` with additionalProperties: false on every object that lists properties and allows no extras,
    which is how the API server treats unknown fields under strict field validation, and its patterns in
    Python's regex dialect."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if isinstance(schema.get("pattern"), str):
            schema["pattern"] = _GO_INLINE_FLAGS.sub(r"(?\1)^", schema["pattern"])
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict openAPIV3Schema of the served version of a vendored CRD (skips when ../shared is absent)."""
    path = SHARED_CRDS / CRD_FILES[(api_version, kind)]
    if not path.exists():
        pytest.skip(f"vendored CRD {path} is absent (expected <project root>/../shared/schemas/crds)")
    crd = load_docs(path)[0]
    version = api_version.split("/")[1]
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    assert served, f"{path.name} serves no version {version}"
    schema = _strict(copy.deepcopy(served[0]["schema"]["openAPIV3Schema"]))
    jsonschema.Draft7Validator.check_schema(schema)  # OpenAPI v3 schemas are close to draft 7
    return schema


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if `obj` is not a valid object of its kind (see the module docstring); a passing call returns None."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    assert obj.get("metadata", {}).get("name"), f"{key} has no metadata.name"
    if key in CRD_FILES:
        jsonschema.Draft7Validator(crd_schema(*key)).validate(obj)
        return
    if key in NOT_VALIDATED:
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            raise AssertionError(
                f"{key} has no built-in schema and no vendored CRD: add the CRD to CRD_FILES or the kind to "
                "NOT_VALIDATED with the reason"
            ) from None
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{key[1]} {obj['metadata']['name']} is invalid for Kubernetes {version}: {exc.message}"
            ) from None


# --- pod templates -----------------------------------------------------------------------------------------

# Kinds whose pods run until stopped (so they need probes), and those whose pods run to completion.
LONG_RUNNING = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
RUN_TO_COMPLETION = frozenset({"Job", "CronJob", "ClusterTrainingRuntime", "TrainingRuntime"})


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod spec) for every pod template inside `obj`."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec = obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield f"{kind}/{name}", spec["template"]["spec"]
    elif kind == "CronJob":
        yield f"{kind}/{name}", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in {"ClusterTrainingRuntime", "TrainingRuntime"}:
        for job in spec["template"]["spec"]["replicatedJobs"]:
            yield f"{kind}/{name}/{job['name']}", job["template"]["spec"]["template"]["spec"]


def workloads() -> list[tuple[str, dict[str, Any], str | None, dict[str, Any]]]:
    """(label, pod spec, namespace, owning object) for every pod template we apply."""
    return [(label, pod, namespace, obj) for _, namespace, obj in local_objects() for label, pod in pod_specs(obj)]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers and containers of a pod spec."""
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])
