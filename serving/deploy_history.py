"""DeploymentHistory: every deploy's outcome on a local served repository, oldest first, in <repo>/deployments.json.

It answers what `omni rollback` needs: which version serves, and which one served before it. tritonserver ignores
a plain file at the repository root (measured on 2.51 in explicit mode: no log line, not in the repository index),
so the history lives beside the versions it describes.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.atomic import write_atomic
from components.deploy.errors import DeployError
from components.deploy.outcome import DEPLOYED, ROLLED_BACK, DeployOutcome

_MOVED = (DEPLOYED, ROLLED_BACK)  # outcomes that leave a known version serving


class DeploymentHistory:
    """The JSON list of DeployOutcome dicts at `path`; a missing file is an empty history."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def records(self) -> list[DeployOutcome]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, list):
                raise TypeError(f"a JSON list of deploy outcomes, got {type(data).__name__}")
            return [DeployOutcome.from_dict(item) for item in data]
        except (ValueError, TypeError) as err:  # JSONDecodeError is a ValueError; unknown keys a TypeError
            raise DeployError(
                f"{self.path} is not a deploy history ({err}); move it aside (the next deploy starts a new one) "
                "and pass the version to roll back to explicitly"
            ) from None

    def record(self, outcome: DeployOutcome) -> None:
        """Append `outcome`; the file is replaced atomically, so a reader never sees half of it."""
        records = [r.to_dict() for r in self.records()] + [outcome.to_dict()]
        write_atomic(self.path, json.dumps(records, indent=2) + "\n")

    def serving(self) -> int | None:
        """The version the last DEPLOYED or ROLLED_BACK deploy left serving; None before any."""
        moved = [r for r in self.records() if r.outcome in _MOVED]
        return moved[-1].serving_version if moved else None

    def previous(self) -> int | None:
        """The version that served before the one serving now (what a rollback returns to); None when none did.

        A version that failed verification and was rolled back never counts: its record's serving version is the
        one it replaced."""
        served: list[int] = []
        for r in self.records():
            if r.outcome not in _MOVED:
                continue
            for version in (r.previous_version, r.serving_version):
                if version is not None and (not served or served[-1] != version):
                    served.append(version)
        return served[-2] if len(served) > 1 else None
