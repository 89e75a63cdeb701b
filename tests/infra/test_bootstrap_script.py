"""bootstrap.sh is valid bash (and shellcheck-clean where shellcheck is installed), applies every step
directory in order, and the README documents every step."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.infra.manifests import BOOTSTRAP

SCRIPT = BOOTSTRAP / "bootstrap.sh"
SHELL_SCRIPTS = [SCRIPT, BOOTSTRAP / "04-minio" / "setup.sh"]
STEP_DIRS = sorted(p.name for p in BOOTSTRAP.iterdir() if p.is_dir() and re.match(r"\d\d-", p.name))


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_syntax(script):
    shell = "bash" if script.read_text().startswith("#!/usr/bin/env bash") else "sh"
    result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_usage_without_a_cluster():
    """No arguments prints the usage and exits 2; an unknown step exits non-zero naming it."""
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Steps:" in result.stdout
    if shutil.which("kubectl"):
        result = subprocess.run(["bash", str(SCRIPT), "nonsense"], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0 and "unknown step 'nonsense'" in result.stderr


def test_every_step_directory_is_applied_in_order():
    text = SCRIPT.read_text()
    applied = re.findall(r'"\$HERE/(\d\d-[\w-]+)', text)
    assert sorted(set(applied)) == STEP_DIRS, "a step directory bootstrap.sh never applies"
    first_use = sorted(set(applied), key=applied.index)
    assert first_use == STEP_DIRS, f"steps applied out of order: {first_use}"
    for match in re.findall(r'"\$HERE/([\w/-]+)"', text):
        assert (BOOTSTRAP / match / "kustomization.yaml").exists() or (BOOTSTRAP / match).is_file(), match
    all_block = re.search(r"\n      all\)\n(.*?);;", text, re.S).group(1).split()
    assert all_block == [
        "step_namespaces",
        "step_pipelines",
        "step_trainer",
        "step_minio",
        "step_mlflow",
        "step_monitoring",
        "step_verify",
    ]


def test_readme_documents_every_step():
    readme = (BOOTSTRAP / "README.md").read_text()
    for step in STEP_DIRS:
        assert f"`{step}/`" in readme, f"README.md has no section for {step}"
    for topic in ("Verify", "Remove"):
        assert readme.count(topic) >= len(STEP_DIRS), f"every step says how to {topic.lower()} it"
