"""Thread pools sized by the pod's CPU quota: fake cgroup v1/v2 files, the chart's OMNI_CPUS, an SRE's override."""

from __future__ import annotations

import os

import pytest

from components.cpu import available_cpus, cgroup_cpu_quota, fit_torch_threads, thread_env, threads_per_process

HOST = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OMNI_CPUS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def cgroup_v2(tmp_path, cpu_max: str):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def cgroup_v1(tmp_path, quota: int, period: int = 100000):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


def test_quota_from_cgroup_v2_and_v1(tmp_path):
    for name in ("v2", "v2max", "v1", "v1none"):
        (tmp_path / name).mkdir()
    assert cgroup_cpu_quota(cgroup_v2(tmp_path / "v2", "150000 100000")) == 1.5
    assert cgroup_cpu_quota(cgroup_v2(tmp_path / "v2max", "max 100000")) is None  # no limit
    assert cgroup_cpu_quota(cgroup_v1(tmp_path / "v1", 50000)) == 0.5
    assert cgroup_cpu_quota(cgroup_v1(tmp_path / "v1none", -1)) is None
    assert cgroup_cpu_quota(tmp_path / "nothing") is None  # not a cgroup: no quota known


def test_the_quota_caps_the_host_cores_and_rounds_up(tmp_path):
    root = cgroup_v2(tmp_path, "50000 100000")  # half a core: still one thread, never zero
    assert available_cpus(root) == 1 and threads_per_process(4, root) == 1
    if HOST >= 2:
        root = cgroup_v2(tmp_path, "150000 100000")
        assert available_cpus(root) == 2  # 1.5 cores -> 2 threads
        assert threads_per_process(2, root) == 1  # two ranks split them


def test_the_charts_grant_caps_a_pod_without_a_limit(tmp_path, monkeypatch):
    root = cgroup_v2(tmp_path, "max 100000")
    assert available_cpus(root) == HOST
    monkeypatch.setenv("OMNI_CPUS", "1")
    assert available_cpus(root) == 1
    monkeypatch.setenv("OMNI_CPUS", "two")
    with pytest.raises(ValueError, match="OMNI_CPUS='two' is not a number of cores"):
        available_cpus(root)


def test_thread_env_for_children_keeps_an_explicit_setting(tmp_path, monkeypatch):
    root = cgroup_v2(tmp_path, "100000 100000")
    env = thread_env(share=2, env={"PATH": "/bin"}, root=root)
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1" and env["PATH"] == "/bin"
    assert thread_env(env={"OMP_NUM_THREADS": "8"}, root=root)["OMP_NUM_THREADS"] == "8"  # an SRE's override


def test_fit_torch_threads_sets_the_pool(tmp_path, monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert fit_torch_threads(root=cgroup_v2(tmp_path, "100000 100000")) == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert fit_torch_threads(root=tmp_path) == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
