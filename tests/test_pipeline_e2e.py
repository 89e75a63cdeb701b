"""The whole chain on one machine: kfp.local runs every step for real on a tiny setting.

Real espeak-ng synthesis, both training stages under real DeepSpeed over 2 torchrun ranks (the thinker, then the
talker on k-means speech units), real MLflow registration with aliases and a child run per stage, the real
tritonserver answering through tritonclient with the model's own voice. Asserts on the artifacts each step
leaves, not on exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from safetensors import safe_open

from components.audio.io import load_wav
from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS
from components.synthesis import read_manifest
from tests.conftest import TINY_PIPELINE_MODEL

pytestmark = pytest.mark.e2e

# Thresholds of 0 make the gate pass whatever a few training steps achieve, so the champion branch runs; the
# speech-agreement check is off (null): a 4-step thinker may say nothing speakable, leaving it not computed.
OPEN_GATE = json.dumps(
    {
        "min_user_emotion_accuracy": 0,
        "min_user_emotion_macro_f1": 0,
        "min_response_emotion_accuracy": 0,
        "min_chrf": 0,
        "min_relevance_user": -1,
        "max_latency_p95_ms": 1e9,
        "min_speech_emotion_agreement": None,
        "min_resynthesis_stoi": 0,
    }
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, s3_server):
    from omni.cli import demo

    endpoint, key, secret = s3_server
    data_dir = tmp_path_factory.mktemp("e2e")
    tiny_model = json.dumps(TINY_PIPELINE_MODEL)
    tiny_talker = json.dumps(
        {
            "log_every_steps": 1,
            "model": {
                "talker_config": {
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_attention_heads": 4,
                    "prenet_layers": 1,
                    "decoder_layers": 1,
                    "max_units_per_token": 4,
                },
                "token2wav_config": {"hidden_size": 32},
            },
        }
    )
    with pytest.MonkeyPatch.context() as env:  # the steps' subprocesses inherit these, as pods get the Secret
        env.setenv("AWS_ACCESS_KEY_ID", key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        summary = demo(
            data_dir=data_dir,
            n=30,
            epochs=2,
            max_steps=4,
            gate_json=OPEN_GATE,
            train_config_json=tiny_model,
            publish_uri=f"s3://{endpoint}/models/emotion-omni/triton",
            instance_kind="gpu",  # the smoke test still serves a CPU copy; only the upload is KIND_GPU
            speech_epochs=2,
            speech_max_steps=3,
            speech_train_config_json=tiny_talker,
            token2wav_json=json.dumps({"num_units": 32}),
        )
    return data_dir, summary, s3_server


def test_dataset_step(demo_run):
    _, summary, _ = demo_run
    rows = read_manifest(Path(summary["dataset"]))
    assert len(rows) == 30
    for split in ("test", "test_unseen_voice"):
        assert {r["user_emotion"] for r in rows if r["split"] == split} == set(USER_EMOTIONS)
    assert (Path(summary["dataset"]) / "README.md").read_text().count("angry") >= 1


def test_both_training_stages(demo_run):
    _, summary, _ = demo_run
    model_dir = Path(summary["model"])
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        assert f.metadata()["zero_stage"] == "2" and f.metadata()["stage"] == "2"
        names = set(f.keys())
    assert {n.split(".")[0] for n in names} == {"thinker", "talker", "token2wav"}  # one speaking model
    config = json.loads((model_dir / "config.json").read_text())
    assert config["thinker_config"]["text_config"]["hidden_size"] == 64
    assert config["talker_config"]["num_units"] == config["token2wav_config"]["num_units"] == 32
    stage1, stage2 = summary["train"]
    assert (stage1["stage"], stage1["steps"], stage2["stage"], stage2["steps"]) == (1, 4, 2, 3)
    assert stage2["trainable_parameters"] < stage2["parameters"]  # the thinker was frozen
    for run in summary["training_runs"]:
        assert (Path(run) / "loss_curve.png").stat().st_size > 10_000
    card = json.loads((Path(summary["speech_units"]) / "units_card.json").read_text())
    assert card["num_units"] == 32 and card["train_units"] > 100


def test_evaluation_step(demo_run):
    _, summary, _ = demo_run
    metrics = summary["metrics"]
    assert 0 <= metrics["user_emotion_accuracy"] <= 1 and 0 <= metrics["chrf"] <= 100
    assert metrics["latency_p50_ms"] > 0
    # The model's own speech was judged: a few steps of training need not say much, but the judge and the
    # resynthesis check are real figures.
    assert 0 <= metrics["resynthesis_stoi"] <= 1 and 1 / 7 <= metrics["speech_judge_accuracy"] <= 1
    report = Path(summary["report"]).read_text()
    assert "data:image/png;base64," in report and "Speech metrics" in report


def test_registration_and_gate(demo_run):
    _, summary, _ = demo_run
    mlflow = summary["mlflow"]
    client = MlflowClient(tracking_uri=mlflow["tracking_uri"])
    model = client.get_registered_model(mlflow["model_name"])
    version = int(mlflow["version"])
    # The demo's last step deployed it, verified: production too.
    assert {k: int(v) for k, v in model.aliases.items()} == {
        "challenger": version,
        "champion": version,
        "production": version,
    }
    run = client.get_run(mlflow["run_id"])
    assert run.data.metrics["user_emotion_accuracy"] == pytest.approx(summary["metrics"]["user_emotion_accuracy"])
    assert run.data.tags["gate"] == "passed" and summary["gate_passed"] is True
    # The first version in a fresh registry: no champion to compare with, the floors alone decided.
    assert summary["gate"]["champion_version"] is None and summary["gate"]["passed"]
    assert "## Gate" in (Path(summary["report"]).parent / "report.md").read_text()
    assert "empathy_score" in summary["not_computed"]  # no OMNI_JUDGE_* here: not computed, never estimated
    assert -1 <= summary["metrics"]["relevance_user"] <= 1
    # Each training stage is its own child run, with its params and its loss curve as metric history.
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"stage 1: thinker (text + emotion)", "stage 2: talker + token2wav (speech)"}
    stage2 = by_name["stage 2: talker + token2wav (speech)"]
    assert stage2.data.params["talker_config.num_units"] == "32"
    assert len(client.get_metric_history(stage2.info.run_id, "unit_loss")) == 3


def test_triton_answered(demo_run):
    _, summary, _ = demo_run
    reply = summary["triton"]["reply"]
    assert reply["user_emotion"] in USER_EMOTIONS and reply["response_emotion"] in RESPONSE_EMOTIONS
    assert reply["endpoint"].startswith("127.0.0.1:")
    repo = Path(summary["triton"]["model_repository"])
    assert (repo / "emotion_omni" / "config.pbtxt").is_file()
    assert (repo / "emotion_omni" / mlflow_version(summary) / "weights" / "model.safetensors").is_file()
    if any(c.isalnum() for c in reply["response_text"]):  # a 4-step model may say nothing; when it speaks,
        assert load_wav(reply["reply_wav"]).size >= 640  # the WAV is the talker's units, 640 samples each


def mlflow_version(summary) -> str:
    return str(summary["mlflow"]["version"])


def test_summary_lists_every_step_time(demo_run):
    data_dir, summary, _ = demo_run
    assert set(summary["step_seconds"]) == {
        "1a synthesize parts (slowest part)",
        "1b synthesize: merge, filter, card",
        "2a train stage 1 (thinker)",
        "2b speech units (k-means)",
        "2c train stage 2 (talker)",
        "3 evaluate",
        "4 gate + register (MLflow)",
        "5a export (Triton repo)",
        "5b serve (tritonserver)",
        "6 deploy (verified rollout)",
    }
    assert all(v > 0 for v in summary["step_seconds"].values())
    assert json.loads((data_dir / "demo_summary.json").read_text())["mlflow"] == summary["mlflow"]


def test_deployed_into_the_local_serving_repository(demo_run):
    """The last step: the version installed into <data_dir>/serving beside any earlier ones, loaded, smoke-tested
    and pinned (both models), so the next `omni serve` of that repository serves it."""
    data_dir, summary, _ = demo_run
    deployment, version = summary["deployment"], int(mlflow_version(summary))
    assert (deployment["outcome"], deployment["version"], deployment["serving_version"]) == (
        "deployed",
        version,
        version,
    )
    assert deployment["previous_version"] is None and deployment["production_alias_moved"] is True
    assert deployment["smoke"]["model_version"] == str(version)
    # A fresh serving repository: nothing served before, so the version loads under its own name and is verified.
    assert [s["name"] for s in deployment["steps"]] == ["preflight", "load", "verify"]
    serving = data_dir / "serving"
    assert (serving / "emotion_omni" / str(version) / "weights" / "model.safetensors").is_file()
    for model in ("emotion_omni", "emotion_omni_stream"):  # the stream model too, though the deploy loaded only one
        assert f"versions: [{version}]" in (serving / model / "config.pbtxt").read_text()
    assert not (serving / "emotion_omni_candidate").exists()
    tags = (
        MlflowClient(summary["mlflow"]["tracking_uri"]).get_model_version(summary["mlflow"]["model_name"], version).tags
    )
    assert tags["omni.deploy.outcome"] == "deployed"


def test_published_where_the_helm_chart_reads(demo_run):
    """The chart serves <base>/<model.version>: the export step must have uploaded exactly that layout."""
    from minio import Minio

    _, summary, (endpoint, key, secret) = demo_run
    version = mlflow_version(summary)
    assert summary["triton"]["published_uri"] == f"s3://http://{endpoint}/models/emotion-omni/triton/{version}"
    client = Minio(endpoint, access_key=key, secret_key=secret, secure=False)
    names = {o.object_name for o in client.list_objects("models", prefix="emotion-omni/triton/", recursive=True)}
    base = f"emotion-omni/triton/{version}/emotion_omni"
    expected = {f"{base}/config.pbtxt", f"{base}/{version}/model.py", f"{base}/{version}/weights/model.safetensors"}
    assert expected <= names
    published_config = client.get_object("models", f"{base}/config.pbtxt").read().decode()
    assert "kind: KIND_GPU" in published_config  # what the chart's gpu profile serves
    local_config = Path(summary["triton"]["model_repository"]) / "emotion_omni" / "config.pbtxt"
    assert "kind: KIND_CPU" in local_config.read_text()  # the smoke-tested copy is left as it was


def test_lineage_walks_the_run_from_pipeline_to_triton(demo_run, capsys):
    """One ID: the summary's lineage ID is on the MLflow version, in the served config.pbtxt and lineage.json (locally
    and in S3), in Triton's answer, and `omni lineage` walks the whole chain from it."""
    from minio import Minio

    from omni.cli import main

    data_dir, summary, (endpoint, key, secret) = demo_run
    lineage_id, version = summary["lineage_id"], mlflow_version(summary)
    reply = summary["triton"]["reply"]
    assert (reply["lineage_id"], reply["model_version"]) == (lineage_id, version)
    local = Path(summary["triton"]["model_repository"]) / "emotion_omni"
    assert f'string_value: "{lineage_id}"' in (local / "config.pbtxt").read_text()
    assert json.loads((local / version / "lineage.json").read_text())["lineage_id"] == lineage_id
    assert f"# emotion-omni v{version}" in (local / version / "MODEL_CARD.md").read_text()
    client = Minio(endpoint, access_key=key, secret_key=secret, secure=False)
    published = client.get_object("models", f"emotion-omni/triton/{version}/emotion_omni/{version}/lineage.json")
    assert json.loads(published.read())["lineage_id"] == lineage_id

    assert main(["lineage", lineage_id, "--data-dir", str(data_dir)]) == 0
    chain = capsys.readouterr().out
    for expected in (
        f"lineage {lineage_id}",
        summary["mlflow"]["run_id"],
        f"emotion-omni v{version}",
        "stage 1: thinker",
        "stage 2: talker",
        "gate             passed",
        summary["triton"]["published_uri"],
        summary["triton"]["model_repository"],
    ):
        assert expected in chain, expected
    assert main(["lineage", version, "--data-dir", str(data_dir)]) == 0  # a version number walks the same chain
    assert f"lineage {lineage_id}" in capsys.readouterr().out
    assert main(["lineage", "no-such-run", "--data-dir", str(data_dir)]) == 2
    assert "carries lineage ID 'no-such-run'" in capsys.readouterr().err
