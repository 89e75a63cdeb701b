"""Render charts/emotion-omni-triton offline and validate every object it produces.

Rendering goes through helm_python (Helm's Go SDK in a wheel: the same engine, schema check and `fail` as
`helm template`), so no helm binary, cluster or network is involved:

    rendered = render({"model": {"version": 2}}, namespace="team-a")
    deployment = rendered.one("Deployment")
    for obj in rendered.objects:
        validate_object(obj)

Built-in kinds are validated by kubernetes-validate in strict mode (unknown fields are errors) for KUBE_VERSION;
ServiceMonitor and PrometheusRule by jsonschema against the served version of the CRDs vendored in
../shared/schemas/crds, made strict the same way; any other kind is an error.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = PROJECT_ROOT / "charts" / "emotion-omni-triton"
SHARED_CRDS = PROJECT_ROOT.parent / "shared" / "schemas" / "crds"
KUBE_VERSION = "1.31"

# The release every test renders unless it says otherwise; tests/charts/promtool/*.test.yaml use these names.
RELEASE = "omni"
NAMESPACE = "serving"
FULLNAME = f"{RELEASE}-emotion-omni-triton"

# libyaml's parser when PyYAML has it: parsing, not rendering, is most of a render's time.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Kinds served by CRDs, and the vendored file holding each definition.
CRD_FILES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}


@dataclass
class Rendered:
    """One render: the raw manifests by template path, the parsed objects, and NOTES.txt."""

    manifests: dict[str, str]
    objects: list[dict[str, Any]]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of `kind`."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        """The single object of `kind`; fails when there are none or several."""
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    @property
    def kinds(self) -> list[str]:
        """Sorted kinds of all objects (repeats included)."""
        return sorted(obj["kind"] for obj in self.objects)


@functools.lru_cache(maxsize=1)
def chart() -> helm.Chart:
    """The chart, loaded once per session (loading parses every file; rendering reuses it)."""
    return helm.Chart.load(CHART_DIR)


def render(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE, name: str = RELEASE) -> Rendered:
    """Render the chart with `values` over its defaults, as `helm template` would for a release install."""
    manifests = chart().render(values or {}, name=name, namespace=namespace, is_install=True)
    notes = manifests.pop(f"{CHART_DIR.name}/templates/NOTES.txt", "")
    objects = [obj for text in manifests.values() for obj in yaml.load_all(text, Loader=_YAML_LOADER) if obj]
    return Rendered(manifests=manifests, objects=objects, notes=notes)


def ci_scenarios() -> dict[str, dict[str, Any]]:
    """Values of every ci/*-values.yaml scenario by file name, plus "default" (no overrides)."""
    scenarios: dict[str, dict[str, Any]] = {"default": {}}
    for path in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        scenarios[path.name] = yaml.safe_load(path.read_text()) or {}
    return scenarios


def _strict(schema: Any) -> Any:
    """The CRD schema with additionalProperties: false wherever it lists properties and does not say
    x-kubernetes-preserve-unknown-fields: the API server prunes such fields silently, so a typo would vanish."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items() if key != "properties"}
    if "properties" in schema:
        out["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def require_shared_crds() -> None:
    """Skip (with the reason) when the vendored CRDs are not next to the project."""
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is absent: the vendored CRD schemas live in ../shared/schemas/crds")


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A strict jsonschema validator for the served version `api_version` of the CRD defining `kind`."""
    require_shared_crds()
    group, version = api_version.split("/")
    crd = yaml.safe_load((SHARED_CRDS / CRD_FILES[(api_version, kind)]).read_text())
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    assert served, f"{kind} {api_version} is not a served version in {CRD_FILES[(api_version, kind)]}"
    schema = _strict(copy.deepcopy(served[0]["schema"]["openAPIV3Schema"]))
    return jsonschema.Draft7Validator(schema)


def validate_object(obj: dict[str, Any]) -> None:
    """Fail with the object's kind/name and the schema error unless `obj` is a valid object of a known kind."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_FILES:
        errors = sorted(crd_validator(*key).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            pytest.fail(f"{where}: " + "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors))
        return
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as err:
        pytest.fail(f"{where}: unknown kind ({err.message}); add its schema to the validation or drop it")
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{where}: {'/'.join(map(str, err.absolute_path))}: {err.message}")


def rule_file(rendered: Rendered, path: Path) -> Path:
    """Write the rendered PrometheusRule's spec (a Prometheus rule-group file) to `path`, for promtool."""
    path.write_text(yaml.safe_dump(rendered.one("PrometheusRule")["spec"], sort_keys=False))
    return path


def container(rendered: Rendered, name: str = "triton") -> dict[str, Any]:
    """The named container of the Deployment's pod template."""
    containers = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)
