"""DeployOutcome: what one deploy (or rollback) did, step by step, and how it ended; the CLI prints it, the pipeline's
deploy step keeps it as metadata, MLflow gets it as version tags and the run summary shows it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

# How a deploy ended. Only DEPLOYED moves the production alias.
DEPLOYED = "deployed"  # the version serves and passed the smoke request and the metrics window
REFUSED = "refused"  # it never served: it failed to load or failed the smoke test; the old version kept serving
ROLLED_BACK = "rolled_back"  # it served, failed verification, and the previous version serves again
ROLLBACK_FAILED = "rollback_failed"  # it failed verification and the restore failed too: an SRE must act
OUTCOMES = (DEPLOYED, REFUSED, ROLLED_BACK, ROLLBACK_FAILED)


@dataclass
class DeployStep:
    name: str  # "load candidate", "smoke", "swap", "unload", "rollout", "window", "rollback", ...
    seconds: float
    detail: str = ""


@dataclass
class DeployOutcome:
    target: str  # "local <url>" or "kubernetes <namespace>/<release>"
    version: int
    previous_version: int | None  # what served before (None: nothing did)
    outcome: str = ""
    reason: str = ""  # why it was refused or rolled back; "" when deployed
    lineage_id: str = ""
    serving_version: int | None = None  # what serves now, read back from the server after the deploy
    steps: list[DeployStep] = field(default_factory=list)
    smoke: dict = field(default_factory=dict)  # the smoke reply: text, emotions, latency, version that answered
    window: dict = field(default_factory=dict)  # the metrics window's verdict (components.deploy.metrics_window)
    production_alias_moved: bool = False
    started_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.outcome == DEPLOYED

    def step(self, name: str, start: float, detail: str = "") -> None:
        """Record a step that began at time.monotonic() `start`."""
        self.steps.append(DeployStep(name, round(time.monotonic() - start, 2), detail))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DeployOutcome:
        data = dict(data)
        data["steps"] = [DeployStep(**s) for s in data.get("steps", [])]
        return cls(**data)

    def lines(self) -> list[str]:
        """The outcome for a terminal or a log: one headline, then each step."""
        before = "nothing" if self.previous_version is None else f"v{self.previous_version}"
        head = f"deploy v{self.version} to {self.target} (was {before}): {self.outcome}"
        if self.reason:
            head += f": {self.reason}"
        lines = [head]
        for s in self.steps:
            lines.append(f"  {s.name:<16} {s.seconds:7.2f} s  {s.detail}".rstrip())
        now = "nothing" if self.serving_version is None else f"v{self.serving_version}"
        lines.append(f"  serving now: {now}; production alias moved: {'yes' if self.production_alias_moved else 'no'}")
        return lines
