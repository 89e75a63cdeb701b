"""How many cores this process may really use, and torch's thread pools sized to match.

torch sizes its intra-op pool by the host's cores. In a pod with a CPU limit on a big node that is the node's
count: 64 threads fighting over a 2-core quota are throttled in turn, and on this 2-core machine one busy
neighbour core tripled the Triton model's median latency (79 -> 252 ms) while OMP_NUM_THREADS=1 kept it at 67 ms
(measured 2026-11-28, issue 8). So every process that runs torch asks here:

    cores = available_cpus()          # min(CPU affinity, ceil(cgroup quota)); the quota wins in a pod
    fit_torch_threads(share=2)        # this process is one of 2 sharing those cores (ranks, instances)

The quota comes from cgroup v2 (`cpu.max`: "200000 100000" = 2 cores; "max" = none) or v1
(`cpu/cpu.cfs_quota_us` / `cpu.cfs_period_us`, -1 = none). A pod without a CPU limit has no quota but should
still not spread over the whole node: the Helm chart passes its CPU limit, or else its request, as OMNI_CPUS,
which caps the count too. An explicit OMP_NUM_THREADS (an SRE's override) always wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from components.errors import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPUS_ENV = "OMNI_CPUS"  # cores the deployment grants this pod (the chart: its CPU limit, else its request)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what torch's pools (and numpy's BLAS) read at start-up


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in cores (e.g. 1.5), or None when there is none or no cgroup file says."""
    root = Path(root)
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, _, period = v2.read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100000)
    quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
    if quota_file.is_file() and period_file.is_file():
        quota = int(quota_file.read_text().strip())
        return None if quota <= 0 else quota / int(period_file.read_text().strip())
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota rounded up and by OMNI_CPUS
    (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    granted = os.environ.get(CPUS_ENV, "")
    if granted:
        try:
            cores = min(cores, math.ceil(float(granted)))
        except ValueError:
            raise ConfigError(
                f"{CPUS_ENV}={granted!r} is not a number of cores; set it like the pod's CPU "
                "limit (e.g. 2 or 1.5) or unset it"
            ) from None
    return max(1, cores)


def threads_per_process(share: int = 1, root: Path = CGROUP_ROOT) -> int:
    """Intra-op threads for one of `share` processes splitting the available cores."""
    return max(1, available_cpus(root) // max(1, share))


def thread_env(share: int = 1, env: dict[str, str] | None = None, root: Path = CGROUP_ROOT) -> dict[str, str]:
    """`env` (default: this process's) with OMP/MKL thread counts for a child that is one of `share` processes.
    A count the caller already set (an SRE's OMP_NUM_THREADS) is kept."""
    env = dict(os.environ if env is None else env)
    threads = str(threads_per_process(share, root))
    for name in THREAD_ENV:
        env.setdefault(name, threads)
    return env


def fit_torch_threads(share: int = 1, root: Path = CGROUP_ROOT) -> int:
    """Size this process's torch intra-op pool (unless OMP_NUM_THREADS says otherwise); returns the count."""
    import torch

    explicit = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(explicit) if explicit.isdigit() and int(explicit) > 0 else threads_per_process(share, root)
    torch.set_num_threads(threads)
    return threads
