"""Run the real infra/bootstrap/bootstrap.sh against recorded stand-ins for kubectl, helm, helmfile, kind, docker,
openssl and sleep (tests/infra/fake_cli.py), and read back what it did.

    cluster = RecordedCluster(tmp_path)
    run = cluster.run("all")                 # the real script, on a PATH with only the stand-ins and coreutils
    run.applied()                            # ["01-namespaces", "02-kubeflow-pipelines/cluster-scoped", ...]
    cluster.secrets[("minio", "minio-root")] # {"MINIO_ROOT_USER": "admin-...", ...}

The PATH holds the stand-ins and links to the few system tools the script uses (bash, sed, base64, ...), nothing
else: a kubectl or docker installed on the machine can never be reached, and a test can leave a tool out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.manifests import BOOTSTRAP, PROJECT_ROOT, kustomizations, load_docs

SCRIPT = BOOTSTRAP / "bootstrap.sh"
FAKE_CLI = Path(__file__).with_name("fake_cli.py")
FAKE_TOOLS = ("kubectl", "helm", "helmfile", "kind", "docker", "openssl", "sleep")
# The system tools bootstrap.sh runs besides the faked ones (`env` is reached by the shebang's absolute path).
SYSTEM_TOOLS = ("bash", "dirname", "sed", "base64", "grep")
# Namespaces the upstream manifests of steps 2 and 3 create (manifests.UPSTREAM_NAMESPACES): KFP's
# cluster-scoped resources hold namespace kubeflow, the Trainer's manager overlay kubeflow-system.
UPSTREAM_CREATES = {
    "02-kubeflow-pipelines/cluster-scoped": ["kubeflow"],
    "03-kubeflow-trainer/manager": ["kubeflow-system"],
}


def _kustomization_models() -> dict[str, dict[str, Any]]:
    """realpath of each kustomization directory -> its namespace, and the namespaces and objects ("Kind/name")
    applying it creates: those of its local resource files and generated ConfigMaps, plus UPSTREAM_CREATES."""
    models = {}
    for kustomization in kustomizations():
        own = [obj for resource in kustomization.local_resources if resource.is_file() for obj in load_docs(resource)]
        objects = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in own]
        objects += [f"ConfigMap/{g['name']}" for g in kustomization.data.get("configMapGenerator") or []]
        relative = (
            kustomization.dir.relative_to(BOOTSTRAP).as_posix() if kustomization.dir.is_relative_to(BOOTSTRAP) else ""
        )
        created = [obj["metadata"]["name"] for obj in own if obj["kind"] == "Namespace"]
        models[os.path.realpath(kustomization.dir)] = {
            "namespace": kustomization.namespace,
            "creates_namespaces": created + UPSTREAM_CREATES.get(relative, []),
            "objects": objects,
        }
    return models


def install_tools(root: Path, fakes: tuple[str, ...], system: tuple[str, ...]) -> Path:
    """root/bin holding a stand-in (fake_cli.py, state in `root`) for each of `fakes` and a link to each of the
    `system` tools; the only directory a script under test gets on PATH."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for tool in fakes:
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -SE "{FAKE_CLI}" "{root}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    for tool in system:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed; the script under test needs it"
        (bin_dir / tool).symlink_to(found)
    (root / "calls.jsonl").touch()
    return bin_dir


def read_calls(root: Path, skip: int = 0) -> list[Call]:
    """The calls recorded in `root`, less the first `skip`."""
    return [Call(**json.loads(line)) for line in (root / "calls.jsonl").read_text().splitlines()[skip:]]


@dataclass
class Call:
    """One call of a stand-in: the tool, its arguments (argv; args without kubectl's -n NAMESPACE, which is
    `namespace`), the manifest piped to `apply -f -`, and the Secrets ("namespace/name") and namespaces that
    existed when it ran."""

    tool: str
    argv: list[str]
    args: list[str]
    namespace: str | None
    stdin: str | None
    secrets: list[str]
    namespaces: list[str]

    @property
    def applied(self) -> str | None:
        """What a `kubectl apply` applied: a -k directory relative to infra/bootstrap (or the project), a -f
        file relative to the project, or "-" for a piped manifest; None for any other call."""
        if self.tool != "kubectl" or not self.args or self.args[0] != "apply":
            return None
        for flag in ("-k", "-f"):
            if flag in self.args:
                target = self.args[self.args.index(flag) + 1]
                if target == "-":
                    return target
                path = Path(target).resolve()
                base = BOOTSTRAP if path.is_relative_to(BOOTSTRAP) else PROJECT_ROOT
                return str(path.relative_to(base))
        return None


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call] = field(default_factory=list)

    def applied(self) -> list[str]:
        """Everything `kubectl apply` applied, in order."""
        return [call.applied for call in self.calls if call.applied]

    def of(self, tool: str) -> list[Call]:
        return [call for call in self.calls if call.tool == tool]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class RecordedCluster:
    """A cluster model in `root` that bootstrap.sh runs against, through the stand-ins (see fake_cli.py).

    namespaces: those that exist before the first run; tools: the stand-ins on PATH; raw_failures: how many
    times the custom metrics API answers an error before it serves; clusters / images: existing kind clusters
    and locally built images.
    """

    def __init__(
        self,
        root: Path,
        namespaces: tuple[str, ...] = (),
        tools: tuple[str, ...] = FAKE_TOOLS,
        raw_failures: int = 0,
        clusters: tuple[str, ...] = (),
        images: tuple[str, ...] = (),
    ):
        self.root = root
        self.bin = install_tools(root, tools, SYSTEM_TOOLS)
        state = {
            "namespaces": sorted(namespaces),
            "secrets": {},
            "objects": [],
            "kustomizations": _kustomization_models(),
            "raw_failures": raw_failures,
            "clusters": list(clusters),
            "images": list(images),
        }
        self._write(state)

    def _state(self) -> dict[str, Any]:
        return json.loads((self.root / "state.json").read_text())

    def _write(self, state: dict[str, Any]) -> None:
        (self.root / "state.json").write_text(json.dumps(state))

    @property
    def secrets(self) -> dict[tuple[str, str], dict[str, str]]:
        """(namespace, name) -> the Secret's keys and values, as created so far."""
        return {tuple(key.split("/", 1)): value for key, value in self._state()["secrets"].items()}

    @property
    def namespaces(self) -> set[str]:
        return set(self._state()["namespaces"])

    @property
    def objects(self) -> set[str]:
        """ "Kind/name" of every object applied so far (from local manifests and piped ones)."""
        return set(self._state()["objects"])

    @property
    def clusters(self) -> list[str]:
        return self._state()["clusters"]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        """bootstrap.sh ARGS with only the stand-ins and SYSTEM_TOOLS on PATH; the calls it made in this run."""
        record = self.root / "calls.jsonl"
        seen = len(record.read_text().splitlines())
        result = subprocess.run(
            [str(SCRIPT), *args],
            env={"PATH": str(self.bin), "HOME": str(self.root), "LANG": "C.UTF-8", **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(result.returncode, result.stdout, result.stderr, read_calls(self.root, seen))
