"""One recorded bootstrap of a fresh cluster, shared by the tests that read what bootstrap.sh creates."""

from __future__ import annotations

import types

import pytest

from tests.infra.recorded_cluster import RecordedCluster


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory):
    """`bootstrap.sh all` against a fresh RecordedCluster (about 5 s): yields `cluster` (its Secrets, namespaces
    and objects afterwards) and `run` (the exit code, output and every recorded call)."""
    cluster = RecordedCluster(tmp_path_factory.mktemp("bootstrap") / "cluster")
    run = cluster.run("all")
    assert run.returncode == 0, run.output[-3000:]
    return types.SimpleNamespace(cluster=cluster, run=run)
