"""The pipeline-facing registry glue: tracking URI fallback, gate thresholds from JSON, gate over a report."""

from __future__ import annotations

import json

import pytest

from components.registry import GateError, evaluate_gate
from components.registry.workflow import evaluation_summary, gate_config, registry_config


def test_tracking_uri_falls_back_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/m.db")
    assert registry_config("").tracking_uri == f"sqlite:///{tmp_path}/m.db"
    assert registry_config("http://mlflow:5000").tracking_uri == "http://mlflow:5000"  # a parameter wins
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ValueError, match="mlflow-credentials"):
        registry_config("")


def test_gate_thresholds_from_json():
    assert gate_config('{"min_chrf": 40}').min_chrf == 40
    assert gate_config("").min_chrf == gate_config("{}").min_chrf
    with pytest.raises(GateError, match=r"unknown gate thresholds \['min_bleu'\]"):
        gate_config('{"min_bleu": 1}')
    for broken in ("{min_chrf: 3", "[30]"):  # not JSON, and JSON that is not an object
        with pytest.raises(GateError, match="give a JSON object"):
            gate_config(broken)


def test_gate_decision_reads_the_evaluation_report(tmp_path):
    summary = {
        "num_samples": 10,
        "user_emotion_accuracy": 0.9,
        "user_emotion_macro_f1": 0.9,
        "response_emotion_accuracy": 0.6,
        "chrf": 10.0,
        "latency_p50_ms": 30,
        "latency_p95_ms": 50,
        "latency_mean_ms": 35,
        "speech_emotion_agreement": 0.5,
        "resynthesis_stoi": 0.8,
        "relevance_user": 0.4,
    }
    (tmp_path / "metrics.json").write_text(json.dumps({"summary": summary}))
    decision = evaluate_gate(evaluation_summary(tmp_path), gate_config("{}"))
    assert not decision.passed and len(decision.reasons) == 1 and "chrf" in decision.reasons[0]
    assert evaluate_gate(evaluation_summary(tmp_path), gate_config('{"min_chrf": 5}')).passed
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        evaluation_summary(tmp_path / "nowhere")
