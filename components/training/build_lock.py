"""Stale build locks of torch's JIT-compiled ops: found and removed before the ranks start, so a retry cannot hang.

DeepSpeed compiles its CPU communication op on first use with torch.utils.cpp_extension, under
TORCH_EXTENSIONS_DIR/<op>/. A FileBaton guards the build: the first process creates `<op>/lock` (O_CREAT|O_EXCL) and
holds it open while it compiles; every other process polls until the file is gone, with no timeout. A build that
was killed (a test run interrupted, a rank killed for memory, a preempted pod whose cache volume survives) leaves
the file behind, and every later run waits on it forever before its first step.

The builder holds the lock open from the moment the file exists until it deletes it, so a lock that no process on
this machine has open belongs to no live build: it is stale. Where /proc cannot say who holds what (not Linux),
a lock counts as stale only once it is older than any build takes (STALE_AFTER_S).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

LOCK_NAME = "lock"  # torch.utils.cpp_extension's baton: <extensions dir>/<op>/lock
# Where /proc is missing: a lock this old is stale. DeepSpeed's CPU op compiles in about 40 s on 2 cores.
STALE_AFTER_S = 600.0


def lock_holders(lock: Path) -> set[int] | None:
    """Ids of the processes on this machine that have `lock` open; None where /proc cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(lock)
    holders = set()
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:  # gone meanwhile, or another user's (who cannot be building in our cache)
            continue
        for link in links:
            try:
                if os.readlink(link) == target:
                    holders.add(int(fd_dir.parent.name))
                    break
            except OSError:  # closed meanwhile
                continue
    return holders


def is_stale(lock: Path, now: float | None = None) -> bool:
    """True when no live build holds `lock` (see the module docstring)."""
    holders = lock_holders(lock)
    if holders is not None:
        return not holders
    age = (time.time() if now is None else now) - lock.stat().st_mtime
    return age > STALE_AFTER_S


def clear_stale_build_locks(extensions_dir: Path) -> list[Path]:
    """Remove the stale `<op>/lock` files under `extensions_dir` with a warning on stderr; return them.

    Call it before the ranks start: a lock a live build holds (another run on this machine compiling now) is kept.
    """
    removed = []
    for lock in sorted(Path(extensions_dir).glob(f"*/{LOCK_NAME}")):
        try:
            if not is_stale(lock):
                continue
            lock.unlink()
        except FileNotFoundError:  # its build finished meanwhile
            continue
        removed.append(lock)
        print(
            f"warning: removed {lock}: no process holds it, so a build of {lock.parent.name} was killed before it "
            "finished, and torch would have waited on it forever",
            file=sys.stderr,
        )
    return removed
