"""The gate decided once at registration, against the champion on the same split; the model card; `trace` walking a
lineage ID back through MLflow. A real MLflow on sqlite; the step directories are small stand-ins."""

from __future__ import annotations

import json
import types

import pytest

from components.contracts import (
    DATASET_STATS_FILE,
    GATE_FILE,
    MODEL_CARD_FILE,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    REPORT_HTML_FILE,
    REPORT_MARKDOWN_FILE,
    REPORT_METRICS_FILE,
    TOKENIZER_FILE,
    TRAIN_CONFIG_FILE,
    TRAIN_LOG_FILE,
    TRAIN_SUMMARY_FILE,
)
from components.evaluation.report_render import render_html, render_markdown
from components.registry import RegistryConfig, RegistryError, resolve
from components.registry.lineage import trace
from components.registry.workflow import promote_champion, read_gate_decision, register_candidate

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

_GOOD = {
    "num_samples": 48.0,
    "user_emotion_accuracy": 0.80,
    "user_emotion_macro_f1": 0.78,
    "response_emotion_accuracy": 0.55,
    "chrf": 24.0,
    "latency_p50_ms": 300.0,
    "latency_p95_ms": 500.0,
    "latency_mean_ms": 320.0,
    "relevance_user": 0.30,
    "speech_emotion_agreement": 0.5,
    "resynthesis_stoi": 0.78,
}


def _step_dirs(root, summary, fingerprint="split-a"):
    """What the evaluate, train and synthesize steps leave: the files register_candidate reads."""
    model = root / "model"
    model.mkdir(parents=True)
    for name in (MODEL_CONFIG_FILE, TOKENIZER_FILE):
        (model / name).write_text("{}")
    (model / MODEL_WEIGHTS_FILE).write_bytes(json.dumps(summary).encode())
    trainings = []
    for stage in (1, 2):
        run = root / f"train{stage}"
        run.mkdir()
        (run / TRAIN_CONFIG_FILE).write_text(json.dumps({"stage": stage, "lr": 3e-4, "model": {}}))
        (run / TRAIN_SUMMARY_FILE).write_text(
            json.dumps(
                {
                    "stage": stage,
                    "steps": 10,
                    "parameters": 1000,
                    "trainable_parameters": 100,
                    "world_size": 2,
                    "zero_stage": 2,
                }
            )
        )
        (run / TRAIN_LOG_FILE).write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
        trainings.append(run)
    evaluation = root / "evaluation"
    evaluation.mkdir()
    (evaluation / REPORT_METRICS_FILE).write_text(
        json.dumps(
            {
                "summary": summary,
                "not_computed": {"empathy_score": "no judge configured"},
                "split": {"name": "test", "rows": 96, "fingerprint": fingerprint},
            }
        )
    )
    sections = [("Metrics", ["metric", "value"], [[k, str(v)] for k, v in summary.items()])]
    (evaluation / REPORT_MARKDOWN_FILE).write_text(render_markdown("eval", sections, []))
    (evaluation / REPORT_HTML_FILE).write_text(render_html("eval", sections, []))
    dataset = root / "dataset"
    dataset.mkdir()
    (dataset / DATASET_STATS_FILE).write_text(
        json.dumps(
            {
                "n_dialogues": 480,
                "seed": 0,
                "generator": {"text": "template", "held_out_speakers": ["flite:slt"]},
                "counts": {"split": {"train": 384, "test": 48}},
            }
        )
    )
    return types.SimpleNamespace(
        model=model, trainings=trainings, evaluation=evaluation, dataset=dataset, out=root / "registration"
    )


def _register(config, dirs, lineage_id, gate_json="{}"):
    return register_candidate(
        dirs.model,
        dirs.trainings,
        dirs.evaluation,
        dirs.dataset,
        dirs.out,
        tracking_uri=config.tracking_uri,
        artifact_location=config.artifact_location,
        model_name=config.model_name,
        gate_json=gate_json,
        lineage_id=lineage_id,
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """v1 (the first, promoted on the floors alone) and v2 (worse than v1 on user emotion): shared by the tests."""
    root = tmp_path_factory.mktemp("champion")
    config = RegistryConfig.local(root / "mlflow")
    first = _step_dirs(root / "run1", _GOOD)
    v1 = _register(config, first, "run-1")
    promote_champion(v1["version"], tracking_uri=config.tracking_uri, model_name=config.model_name)
    worse = _step_dirs(root / "run2", {**_GOOD, "user_emotion_accuracy": 0.70})
    v2 = _register(config, worse, "run-2")
    return types.SimpleNamespace(root=root, config=config, v1=v1, v2=v2, first=first, worse=worse)


def test_the_first_version_is_judged_on_the_floors_alone(registry):
    assert registry.v1["gate"] == "passed" and registry.v1["champion_version"] == ""
    decision = json.loads((registry.first.out / "evaluation" / GATE_FILE).read_text())
    assert decision["champion_version"] is None and decision["comparisons"] == []


def test_a_worse_challenger_is_not_promoted_and_mlflow_and_the_report_say_why(registry):
    assert registry.v2["gate"] == "failed" and registry.v2["champion_version"] == "1"
    decision = json.loads((registry.worse.out / "evaluation" / GATE_FILE).read_text())
    assert decision["floors_passed"] and not decision["passed"]
    assert read_gate_decision(registry.worse.out).to_dict() == decision  # what check-gate branches on
    [reason] = decision["reasons"]
    assert "worse than champion v1" in reason and "user_emotion_accuracy" in reason
    report = (registry.worse.out / "evaluation" / REPORT_MARKDOWN_FILE).read_text()
    assert report.index("## Gate") < report.index("## Figures") and "FAILED: the champion stays" in report
    assert "| user_emotion_accuracy | 0.7 | 0.8 | -0.1 | 0.02 | worse |" in report
    from mlflow import MlflowClient

    client = MlflowClient(registry.config.tracking_uri)
    version = client.get_model_version(registry.config.model_name, "2")
    assert version.tags["gate"] == "failed" and version.tags["gate_champion_version"] == "1"
    assert client.get_run(version.run_id).data.metrics["gate_diff_user_emotion_accuracy"] == pytest.approx(-0.1)
    assert "# emotion-omni v2" in version.description and "worse than champion v1" in version.description
    assert resolve(registry.config, "champion").version == "1"  # nothing moved it


def test_a_better_challenger_passes_and_a_tie_within_tolerance_passes(registry, tmp_path):
    better = _step_dirs(tmp_path / "better", {**_GOOD, "user_emotion_accuracy": 0.85, "chrf": 26.0})
    assert _register(registry.config, better, "run-better")["gate"] == "passed"
    tie = _step_dirs(tmp_path / "tie", {**_GOOD, "user_emotion_accuracy": 0.79, "chrf": 23.5})  # within 0.02 / 1.0
    assert _register(registry.config, tie, "run-tie")["gate"] == "passed"
    # Comparing with the champion can be switched off; then a worse model passes on the floors.
    worse = _step_dirs(tmp_path / "worse", {**_GOOD, "user_emotion_accuracy": 0.6})
    assert _register(registry.config, worse, "run-w", '{"compare_with_champion": false}')["gate"] == "passed"


def test_a_retried_registration_returns_the_version_it_made(registry, tmp_path):
    again = _step_dirs(tmp_path / "again", {**_GOOD, "user_emotion_accuracy": 0.70})
    retried = _register(registry.config, again, "run-2")
    assert retried["version"] == registry.v2["version"] and retried["gate"] == "failed"


def test_the_model_card_records_data_metrics_gate_and_limits(registry):
    card = (registry.worse.out / MODEL_CARD_FILE).read_text()
    for expected in (
        "# emotion-omni v2",
        "lineage ID: `run-2`",
        "480 synthetic dialogues",
        "fingerprint `split-a`",
        "| user_emotion_accuracy | 0.7 |",
        "| empathy_score | not computed: no judge configured |",
        "gate FAILED, against champion v1",
        "## Known limits",
        "English only",
    ):
        assert expected in card, expected


def test_a_champion_evaluated_on_another_split_needs_the_dataset_to_be_evaluated_again(registry, tmp_path):
    other = _step_dirs(tmp_path / "other", _GOOD, fingerprint="split-b")
    with pytest.raises(ValueError, match="evaluated on another split"):
        from components.registry.champion import champion_metrics

        champion_metrics(registry.config, "split-b", None)
    assert other.evaluation.is_dir()


def test_trace_walks_a_lineage_id_and_a_version_number(registry):
    chain = "\n".join(trace(registry.config, "run-1").lines())
    assert "lineage run-1" in chain and "emotion-omni v1, aliases ['champion']" in chain
    assert "stage 1: thinker" in chain and "gate             passed" in chain
    assert "split split-a" in chain and "user_emotion_accuracy 0.8" in chain
    by_version = "\n".join(trace(registry.config, "2").lines())
    assert "lineage run-2" in by_version and "failed: worse than champion v1" in by_version


def test_trace_of_an_unknown_id_or_version_names_the_fix(registry):
    with pytest.raises(RegistryError, match="carries lineage ID 'no-such-run'"):
        trace(registry.config, "no-such-run")
    with pytest.raises(RegistryError, match="has no version 999"):
        trace(registry.config, "999")


def test_a_champion_evaluated_on_another_split_is_evaluated_again_on_this_one(tmp_path, tiny_model_dir, tiny_dialogues):
    """After a dataset change the stored metrics describe other turns: the champion is downloaded and scored on the
    challenger's split, so the comparison is like for like."""
    from components.registry import register_model
    from components.registry.champion import EVAL_SPLIT_TAG, champion_metrics
    from components.registry.workflow import promote_champion

    config = RegistryConfig.local(tmp_path / "mlflow")
    version = register_model(
        tiny_model_dir,
        config=config,
        params={},
        metrics={"user_emotion_accuracy": 0.99},
        tags={EVAL_SPLIT_TAG: "an-older-split"},
        lineage_id="old-run",
    )
    promote_champion(version.version, tracking_uri=config.tracking_uri, model_name=config.model_name)

    champion = champion_metrics(config, "this-split", tiny_dialogues)

    assert (champion.version, champion.source) == ("1", "re-evaluated")
    assert champion.summary["user_emotion_accuracy"] != 0.99  # measured again, not the stored figure
    assert {"chrf", "relevance_user", "resynthesis_stoi"} <= set(champion.summary)
    assert champion_metrics(config, "an-older-split", tiny_dialogues).source == "stored"
