"""The compiled IR YAML (`omni pipeline compile` with default settings) against the reviewed golden file.

Any change to the graph, a step's code, its image or its cluster settings changes the IR; the diff shows it in
review. Compilation is deterministic (same kfp, same source -> same bytes); nothing is stripped: the golden
file embeds kfp's sdkVersion, so a kfp upgrade regenerates it too. Regenerate after a deliberate change:

    OMNI_UPDATE_GOLDEN=1 pytest tests/pipelines -k golden
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from pipelines.emotion_omni import compile_pipeline

GOLDEN = Path(__file__).parent / "golden" / "emotion_omni.yaml"
REGENERATE = "OMNI_UPDATE_GOLDEN=1 pytest tests/pipelines -k golden"


def test_compiled_pipeline_matches_golden(tmp_path):
    compiled = Path(compile_pipeline(str(tmp_path / "pipeline.yaml"))).read_text()
    if os.environ.get("OMNI_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(compiled)
    assert GOLDEN.is_file(), f"no golden file {GOLDEN}; create it with: {REGENERATE}"
    golden = GOLDEN.read_text()
    if compiled != golden:
        diff = "".join(
            difflib.unified_diff(
                golden.splitlines(keepends=True),
                compiled.splitlines(keepends=True),
                fromfile=str(GOLDEN),
                tofile="compiled now",
                n=2,
            )
        )
        lines = diff.splitlines()
        shown = "\n".join(lines[:200]) + (f"\n... {len(lines) - 200} more diff lines" if len(lines) > 200 else "")
        raise AssertionError(
            f"the compiled pipeline differs from the golden file:\n{shown}\n\n"
            f"If the change is intended, regenerate and review the diff: {REGENERATE}"
        )


def test_compilation_is_deterministic(tmp_path):
    first = Path(compile_pipeline(str(tmp_path / "a.yaml"))).read_bytes()
    assert Path(compile_pipeline(str(tmp_path / "b.yaml"))).read_bytes() == first
