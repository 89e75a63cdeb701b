"""Every YAML file parses, every object we apply validates strictly offline, and no manifest is left out of
a kustomization (where it would never be applied)."""

from __future__ import annotations

import copy
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.infra.manifests import (
    BOOTSTRAP,
    KIND_CONFIG,
    PROJECT_ROOT,
    TRAINING_NAMESPACE,
    kustomizations,
    load_docs,
    local_objects,
    validate_object,
    yaml_files,
)

OBJECTS = local_objects()


def _id(entry) -> str:
    path, _, obj = entry
    return f"{path.relative_to(BOOTSTRAP)}:{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_yaml_parses(path):
    assert load_docs(path), f"{path} holds no YAML document"


def test_every_step_applies_objects():
    files = {path.relative_to(BOOTSTRAP).parts[0] for path, _, _ in OBJECTS}
    assert {"01-namespaces", "03-kubeflow-trainer", "04-minio", "05-mlflow", "06-monitoring"} <= files


@pytest.mark.parametrize("entry", OBJECTS, ids=_id)
def test_object_validates(entry):
    validate_object(entry[2])


def test_no_orphan_manifests():
    """A Kubernetes object in a YAML file no kustomization lists would silently never be applied."""
    applied = {path for path, _, _ in OBJECTS}
    listed_kustomizations = {k.path for k in kustomizations()}
    orphans = []
    for path in yaml_files():
        if path in applied or path in listed_kustomizations or path == KIND_CONFIG:
            continue
        if any(isinstance(doc, dict) and {"apiVersion", "kind"} <= doc.keys() for doc in load_docs(path)):
            orphans.append(str(path.relative_to(PROJECT_ROOT)))
    assert not orphans, f"Kubernetes objects outside any kustomization's resources: {orphans}"


def test_namespaced_objects_land_in_our_namespaces():
    for path, namespace, obj in OBJECTS:
        if obj["kind"] in {"Namespace", "ClusterTrainingRuntime"}:
            assert namespace is None, f"{path}: cluster-scoped {obj['kind']} under a namespaced kustomization"
        else:
            assert namespace in {"minio", "mlflow", "monitoring", TRAINING_NAMESPACE}, (
                f"{path}: no (or a foreign) namespace"
            )
            assert "namespace" not in obj["metadata"], f"{path}: the kustomization sets the namespace, not the file"


LOCAL_ONLY = [k for k in kustomizations() if not k.remote_resources]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not on PATH")
@pytest.mark.parametrize("kustomization", LOCAL_ONLY, ids=lambda k: str(k.dir.relative_to(PROJECT_ROOT)))
def test_kustomize_build_validates(kustomization):
    """What kubectl actually applies (generators, labels and namespaces added) is valid too."""
    built = subprocess.run(["kubectl", "kustomize", str(kustomization.dir)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    objects = [obj for obj in yaml.safe_load_all(built.stdout) if obj]
    assert objects
    for obj in objects:
        validate_object(obj)


def _runtime():
    return next(obj for _, _, obj in OBJECTS if obj["kind"] == "ClusterTrainingRuntime")


def test_validation_rejects_unknown_fields_in_builtin_kinds():
    deployment = next(obj for _, _, obj in OBJECTS if obj["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # typo
    with pytest.raises(AssertionError, match="invalid for Kubernetes"):
        validate_object(broken)


def test_validation_rejects_unknown_fields_in_crd_kinds():
    """numProcPerNode left the Torch policy in Trainer v2.2: a runtime still setting it must fail here."""
    broken = copy.deepcopy(_runtime())
    broken["spec"]["mlPolicy"]["torch"]["numProcPerNode"] = "auto"
    with pytest.raises(jsonschema.ValidationError, match="numProcPerNode"):
        validate_object(broken)


def test_validation_rejects_kinds_without_a_schema():
    with pytest.raises(AssertionError, match="no built-in schema and no vendored CRD"):
        validate_object({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "old"}})
