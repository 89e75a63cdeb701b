"""The zero-downtime benchmark: its figures from hand-made records, then a real rollout of the tiny model on a live
tritonserver under load."""

from __future__ import annotations

import json

import pytest

from components.deploy.outcome import DEPLOYED, ROLLED_BACK, DeployOutcome, DeployStep
from components.errors import ConfigError
from serving.bench_rollout import PHASES, bench_rollout, format_table, rollout_result
from serving.steady_load import LoadReport, RequestRecord


def _record(start_s: float, latency_s: float, version: str = "1", error: str = "") -> RequestRecord:
    return RequestRecord(start_s, latency_s, not error, error, "" if error else version)


def _outcome(outcome: str = DEPLOYED) -> DeployOutcome:
    steps = [DeployStep("load candidate", 1.5), DeployStep("smoke", 0.5, "ok"), DeployStep("swap", 2.0)]
    return DeployOutcome("local 127.0.0.1:1", 2, 1, outcome=outcome, serving_version=2, steps=steps)


def test_phases_ratio_and_slow_default_from_records():
    records = [_record(t, 0.1) for t in (0, 1, 2, 3)]  # before [0, 4): p95 0.1
    records += [_record(4.5, 0.5), _record(5, 0.1, "2"), _record(6, 9.0, error="ServingError: refused")]  # [4, 8)
    records += [_record(t, 0.1, "2") for t in (8, 9)]  # after [8, 10]
    result = rollout_result(LoadReport(records, 10.0, 0), _outcome(), (4.0, 8.0), None)

    assert result["slow_s"] == pytest.approx(0.2)  # twice the before phase's p95
    before, during, after = (result["phases"][p] for p in PHASES)
    assert (before["requests"], before["versions"], before["slow"]) == (4, {"1": 4}, 0)
    assert (during["requests"], during["failed"], during["slow"]) == (3, 1, 1)
    assert during["versions"] == {"1": 1, "2": 1} and during["errors"] == ["ServingError: refused"]
    assert after["versions"] == {"2": 2}
    assert result["p95_ratio_during_vs_before"] == pytest.approx(during["p95_s"] / 0.1, rel=1e-3)
    assert result["total"]["failed"] == 1 and result["zero_downtime"] is False
    assert [s["start_s"] for s in result["deploy"]["steps"]] == [4.0, 5.5, 6.0]  # laid end to end from the deploy
    assert result["bounds_s"] == {"before": [0.0, 4.0], "during": [4.0, 8.0], "after": [8.0, 10.0]}

    table = format_table(result)
    assert "| during | 4.0 | 3 | 1 | 1 |" in table and "v1: 1, v2: 1" in table
    assert "| smoke | 5.5 | 0.50 | ok |" in table and "- ServingError: refused" in table
    assert "zero downtime: no" in table


def test_an_explicit_slow_s_and_a_baseline_with_no_answers():
    records = [_record(0, 1.0, error="ServingError: down"), _record(5, 0.3, "2")]
    result = rollout_result(LoadReport(records, 6.0, 0), _outcome(ROLLED_BACK), (1.0, 4.0), 0.25)
    assert result["slow_s"] == 0.25 and result["phases"]["after"]["slow"] == 1
    assert result["p95_ratio_during_vs_before"] is None  # nothing answered before: no ratio to give
    assert result["deploy"]["outcome"] == ROLLED_BACK and not result["zero_downtime"]
    fallback = rollout_result(LoadReport(records, 6.0, 0), _outcome(), (1.0, 4.0), None)
    assert fallback["slow_s"] == 2.0  # DeployConfig's max_p95_latency_s, the chart's alert threshold


@pytest.mark.parametrize("kwargs, key", [({"baseline_s": 0}, "baseline_s"), ({"slow_s": -1.0}, "slow_s")])
def test_bad_settings_are_refused_before_anything_starts(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        bench_rollout(tmp_path / "no-model", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def talking_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model, made to answer the probe with letters. Untrained, it answers newlines only (nothing to say),
    which the deploy's smoke check rightly refuses. Scaling one letter's row of the (tied) embedding makes that
    letter's logit win wherever it was positive; the first letter for which it does that on the probe is kept."""
    import string

    import torch

    from components.audio.io import decode_wav
    from components.export.pretrained import load_pretrained, save_pretrained
    from components.inference.responder import EmotionOmniResponder
    from serving.smoke import probe_wav

    model, tokenizer = load_pretrained(tiny_model_dir)
    wave = decode_wav(probe_wav())
    rows = model.thinker.llm.get_input_embeddings().weight
    for letter in string.ascii_lowercase:
        [token] = tokenizer.encode(letter).ids
        with torch.no_grad():
            rows[token] *= 10
        if EmotionOmniResponder(model, tokenizer).respond(wave).text:
            return save_pretrained(model, tokenizer, tmp_path_factory.mktemp("talking") / "model")
        with torch.no_grad():
            rows[token] /= 10
    pytest.fail("no letter's scaled embedding made the tiny model answer the probe with text")


@pytest.mark.triton
def test_a_rollout_of_the_tiny_model_under_load_drops_no_request(talking_model_dir, tmp_path):
    out = tmp_path / "out"
    result = bench_rollout(talking_model_dir, out, rate_per_s=4.0, max_in_flight=2, baseline_s=3.0, window_s=2.0)

    assert result["deploy"]["outcome"] == DEPLOYED, result["deploy"]
    assert (result["deploy"]["previous_version"], result["deploy"]["version"]) == (1, 2)
    assert result["deploy"]["steps"] and all(s["seconds"] >= 0 for s in result["deploy"]["steps"])
    before, during, after = (result["phases"][p] for p in PHASES)
    assert result["total"]["failed"] == 0 and result["zero_downtime"], result["total"]["errors"]
    assert before["requests"] > 0 and set(before["versions"]) == {"1"}
    assert after["requests"] > 0 and set(after["versions"]) == {"2"}
    assert sum(p["requests"] for p in (before, during, after)) == result["total"]["requests"]
    assert result["slow_s"] == pytest.approx(2 * before["p95_s"], abs=1e-3)
    assert result["p95_ratio_during_vs_before"] is None or result["p95_ratio_during_vs_before"] > 0

    saved = json.loads((out / "rollout.json").read_text())
    assert len(saved["requests"]) == result["total"]["requests"] and saved["phases"] == result["phases"]
    table = (out / "rollout.md").read_text()
    assert all(f"| {p} |" in table for p in PHASES)
    assert (out / "rollout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
