"""DeployOutcome: the record every deploy reports survives JSON (the pipeline's artifact, the summary)."""

import json
import time

from components.deploy.outcome import DEPLOYED, REFUSED, DeployOutcome


def test_round_trips_through_json_and_reads_as_lines():
    outcome = DeployOutcome("local 127.0.0.1:8000", version=3, previous_version=2, lineage_id="12345678")
    outcome.step("load candidate", time.monotonic() - 1.5, "emotion_omni_candidate v3")
    outcome.outcome, outcome.reason, outcome.serving_version = REFUSED, "load failed: bad weights", 2
    again = DeployOutcome.from_dict(json.loads(json.dumps(outcome.to_dict())))
    assert again == outcome and not again.ok
    head, step, last = again.lines()
    assert head == "deploy v3 to local 127.0.0.1:8000 (was v2): refused: load failed: bad weights"
    assert step.split()[:2] == ["load", "candidate"] and "emotion_omni_candidate v3" in step
    assert last == "  serving now: v2; production alias moved: no"


def test_only_deployed_is_ok():
    assert DeployOutcome("t", 1, None, outcome=DEPLOYED).ok
    assert "was nothing" in DeployOutcome("t", 1, None, outcome=DEPLOYED).lines()[0]
