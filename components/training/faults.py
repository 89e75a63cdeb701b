"""Fault injection for the training ranks: a real SIGKILL at a chosen point, to prove that resume loses nothing.

    OMNI_FAULT_INJECT=rank1@step5        rank 1 kills itself right after optimizer step 5
    OMNI_FAULT_INJECT=rank0@checkpoint4  rank 0 kills itself after DeepSpeed wrote the step-4 checkpoint and
                                         before it is marked complete (a save cut short)

Unset (always, outside the fault tests) it costs one dictionary lookup per step. A preempted node, an OOM kill
and a pipeline retry all look like this to the run: processes gone without a word.
"""

from __future__ import annotations

import os
import re
import signal

FAULT_ENV = "OMNI_FAULT_INJECT"
_SPEC = re.compile(r"^rank(\d+)@(step|checkpoint)(\d+)$")


def parse_fault(spec: str) -> tuple[int, str, int]:
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"{FAULT_ENV}={spec!r}: write rank<R>@step<N> or rank<R>@checkpoint<N>")
    return int(match.group(1)), match.group(2), int(match.group(3))


def maybe_fault(point: str, rank: int, step: int) -> None:
    """SIGKILL this process when the environment asks for a fault at (`point`, `rank`, `step`)."""
    spec = os.environ.get(FAULT_ENV)
    if spec and parse_fault(spec) == (rank, point, step):
        os.kill(os.getpid(), signal.SIGKILL)
