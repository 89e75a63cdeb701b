"""Every shell script in the repository passes shellcheck, and the MinIO setup script (run by the minio-buckets Job)
does its job against a recorded mc, with exactly the environment the Job gives it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.infra.manifests import BOOTSTRAP, PROJECT_ROOT, containers, kustomizations, load_docs
from tests.infra.recorded_cluster import install_tools, read_calls

MINIO = BOOTSTRAP / "04-minio"
SETUP_SCRIPT = MINIO / "setup.sh"


def shell_scripts() -> list[str]:
    """Tracked files whose first line is a shell shebang (sh, bash, dash...), relative to the project; outside a
    git checkout (a source tarball), the files under infra/ and .ci/."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, timeout=30)
    if listed.returncode == 0:
        names = filter(None, listed.stdout.decode().split("\0"))
    else:
        names = (str(p.relative_to(PROJECT_ROOT)) for d in ("infra", ".ci") for p in (PROJECT_ROOT / d).rglob("*"))
    scripts = []
    for name in sorted(names):
        path = PROJECT_ROOT / name
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                first = f.readline(200)
            if first.startswith(b"#!") and first.split(b"/")[-1].split()[-1].endswith(b"sh"):
                scripts.append(name)
    return scripts


def test_shell_scripts_are_found():
    scripts = shell_scripts()
    for expected in ("infra/setup.sh", "infra/bootstrap/bootstrap.sh", "infra/bootstrap/04-minio/setup.sh", ".ci/run"):
        assert expected in scripts, f"{expected} was not recognised as a shell script"


@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck(script):
    if shutil.which("shellcheck") is None:
        message = "shellcheck is not installed: run `make setup` (infra/setup.sh installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    # -x follows `source`d files; the shebang picks the dialect (sh scripts are held to POSIX).
    result = subprocess.run(["shellcheck", "-x", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- infra/bootstrap/04-minio/setup.sh ------------------------------------------------------------------------


def _bucket_job() -> tuple[dict, dict]:
    """(the minio-buckets Job's container, the configMapGenerator entry it mounts at /setup)."""
    (kustomization,) = [k for k in kustomizations() if k.dir == MINIO]
    (job,) = [doc for doc in load_docs(MINIO / "job-buckets.yaml") if doc["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    (container,) = containers(pod)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/setup"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (generator,) = [g for g in kustomization.data["configMapGenerator"] if g["name"] == volume["configMap"]["name"]]
    return container, generator


class RecordedMinio:
    """infra/bootstrap/04-minio/setup.sh run with `sh` as the Job runs it, against a recorded mc."""

    def __init__(self, root, unreachable: int = 0, attach_error: str = ""):
        self.root = root
        self.bin = install_tools(root, ("mc", "sleep"), ("sh",))
        # The ConfigMap as the Job sees it at /setup: each generator file under its key (its base name).
        container, generator = _bucket_job()
        self.mount = root / "setup"
        self.mount.mkdir()
        for entry in generator["files"]:
            key, _, source = entry.rpartition("=")
            shutil.copy(MINIO / source, self.mount / (key or os.path.basename(source)))
        self.command = [*container["command"][:-1], str(self.mount / os.path.basename(container["command"][-1]))]
        self.container = container
        state = {
            "mount": str(self.mount),
            "unreachable": unreachable,
            "attach_error": attach_error,
            "buckets": [],
            "policies": {},
            "users": {},
            "attached": {},
        }
        (root / "state.json").write_text(json.dumps(state))

    @property
    def state(self) -> dict:
        return json.loads((self.root / "state.json").read_text())

    def run(self, secrets: dict[tuple[str, str], dict[str, str]]) -> subprocess.CompletedProcess:
        """The script with the Job container's env: its literal values and the Secrets it names in envFrom."""
        env = {"PATH": str(self.bin)}
        env |= {e["name"]: e["value"] for e in self.container.get("env", []) if "value" in e}
        for source in self.container.get("envFrom", []):
            env |= secrets[("minio", source["secretRef"]["name"])]
        return subprocess.run(
            self.command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )


def test_bucket_job_creates_buckets_and_least_privilege_users(tmp_path, bootstrapped):
    """With the Secrets bootstrap.sh created: every consumer's MinIO user exists with the key its own Secret holds."""
    secrets = bootstrapped.cluster.secrets
    minio = RecordedMinio(tmp_path, unreachable=2)
    result = minio.run(secrets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("waiting for MinIO at http://minio.minio.svc.cluster.local:9000") == 2
    assert [c.args for c in read_calls(tmp_path) if c.tool == "sleep"] == [["5"], ["5"]]
    state = minio.state
    root = secrets[("minio", "minio-root")]
    assert (
        state["alias"]["user"] == root["MINIO_ROOT_USER"] and state["alias"]["password"] == root["MINIO_ROOT_PASSWORD"]
    )
    assert state["buckets"] == ["mlflow", "models"]
    # Each consumer reaches MinIO with the key pair in its own Secret, which is a user with exactly one policy.
    consumers = {
        ("mlflow", "mlflow-server"): "mlflow-rw",
        ("kubeflow", "mlflow-credentials"): "pipelines-rw",
        ("serving", "omni-triton-secrets"): "triton-ro",
    }
    for secret, policy in consumers.items():
        key, secret_key = secrets[secret]["AWS_ACCESS_KEY_ID"], secrets[secret]["AWS_SECRET_ACCESS_KEY"]
        assert state["users"].get(key) == secret_key, f"{secret}: no MinIO user with its keys"
        assert state["attached"][key] == [policy], f"{secret}: user {key} has {state['attached'][key]}"
    for value in (*root.values(), *secrets[("minio", "minio-users")].values()):
        if len(value) >= 16:
            assert value not in result.stdout + result.stderr, "the setup script printed a credential"


def test_bucket_job_is_idempotent(tmp_path, bootstrapped):
    """The Job runs again on every `bootstrap.sh minio`; mc refuses to attach an attached policy."""
    minio = RecordedMinio(tmp_path)
    assert minio.run(bootstrapped.cluster.secrets).returncode == 0
    again = minio.run(bootstrapped.cluster.secrets)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("MinIO ready: buckets mlflow, models")


def test_bucket_job_fails_on_any_other_error(tmp_path, bootstrapped):
    minio = RecordedMinio(tmp_path, attach_error="Access Denied.")
    result = minio.run(bootstrapped.cluster.secrets)
    assert result.returncode != 0 and "Access Denied." in result.stderr
    assert "MinIO ready" not in result.stdout
