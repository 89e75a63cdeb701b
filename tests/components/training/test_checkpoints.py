"""Checkpoint bookkeeping without ranks: completeness, pruning, the mirror (a directory and real S3), live metrics,
fault specs and the config checks that run before any rank starts."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import asdict

import pytest

from components.training import TrainConfig
from components.training.checkpoints import (
    COMPLETE_FILE,
    CheckpointInfo,
    TrainPosition,
    check_resumable,
    complete_checkpoints,
    fingerprint,
    latest_complete,
    mark_complete,
    prune,
    tag_for,
)
from components.training.config import deepspeed_config
from components.training.faults import parse_fault
from components.training.mirror import CheckpointMirror


def _checkpoint(root, step: int, config: TrainConfig, complete: bool = True) -> CheckpointInfo:
    info = CheckpointInfo(tag_for(step), TrainPosition(step=step, epoch=step // 2), fingerprint(config), 2, 2)
    (root / info.tag).mkdir(parents=True)
    (root / info.tag / "mp_rank_00_model_states.pt").write_bytes(b"weights of step %d" % step)
    if complete:
        mark_complete(root, info)
    return info


def test_only_complete_checkpoints_count_and_prune_keeps_the_newest(tmp_path):
    config = TrainConfig()
    for step in (2, 4, 6):
        _checkpoint(tmp_path, step, config)
    _checkpoint(tmp_path, 8, config, complete=False)  # a kill cut this save short
    assert latest_complete(tmp_path).position == TrainPosition(step=6, epoch=3)
    assert [c.tag for c in complete_checkpoints(tmp_path)] == [tag_for(2), tag_for(4), tag_for(6)]
    assert prune(tmp_path, keep=2) == [tag_for(2)]
    assert (tmp_path / tag_for(8)).is_dir()  # newer than the newest complete one: maybe a save under way
    _checkpoint(tmp_path, 10, config)
    assert prune(tmp_path, keep=2) == [tag_for(4), tag_for(8)]  # now the step-8 leftovers are debris
    assert latest_complete(tmp_path / "nothing-here") is None


def test_resume_checks_name_each_difference():
    config = TrainConfig()
    info = CheckpointInfo(tag_for(4), TrainPosition(step=4), fingerprint(config), world_size=2, zero_stage=2)
    check_resumable(info, config, 2)
    with pytest.raises(ValueError, match="2 ranks' ZeRO partitions, this run 4"):
        check_resumable(info, config, 4)
    lora = TrainConfig(lora_r=8, llm_path="/models/qwen")
    with pytest.raises(ValueError, match="another model config"):
        check_resumable(info, lora, 2)
    # What does not change a checkpoint's tensors may change between attempts (e.g. more epochs).
    check_resumable(info, TrainConfig(epochs=99, max_steps=7), 2)


@pytest.mark.parametrize("s3", [False, True], ids=["directory", "s3"])
def test_mirror_round_trip(tmp_path, s3, request):
    if s3:
        endpoint, key, secret = request.getfixturevalue("s3_server")
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        uri = f"s3://{endpoint}/models/ckpt/{tmp_path.name}"
    else:
        uri = str(tmp_path / "pvc" / "ckpt")
    config, local = TrainConfig(), tmp_path / "run1" / "checkpoints"
    mirror = CheckpointMirror(uri)
    for step in (1, 2, 3):
        mirror.push(local, _checkpoint(local, step, config), keep=2)
    assert mirror.tags() == [tag_for(2), tag_for(3)]

    restarted = tmp_path / "run2" / "checkpoints"  # a retry's pod: an empty run directory
    info = mirror.pull_latest(restarted)
    assert info.tag == tag_for(3) and info.fingerprint == fingerprint(config)
    assert (restarted / tag_for(3) / "mp_rank_00_model_states.pt").read_bytes() == b"weights of step 3"
    assert latest_complete(restarted).tag == tag_for(3)


def test_a_mirror_without_a_marker_is_not_a_checkpoint(tmp_path):
    mirror_dir = tmp_path / "pvc"
    (mirror_dir / tag_for(5)).mkdir(parents=True)
    (mirror_dir / tag_for(5) / "mp_rank_00_model_states.pt").write_bytes(b"half")  # upload cut short
    assert CheckpointMirror(str(mirror_dir)).pull_latest(tmp_path / "run") is None


def test_resume_refuses_to_start_over_on_a_used_mirror(tmp_path, tiny_dialogues):
    from components.training.launch import resume_point

    config = TrainConfig(checkpoint_uri=str(tmp_path / "pvc"))
    local = tmp_path / "old" / "checkpoints"
    CheckpointMirror(config.checkpoint_uri).push(local, _checkpoint(local, 2, config), keep=1)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        resume_point(tmp_path / "new", config, 2, resume=False)
    info = resume_point(tmp_path / "new", config, 2, resume=True)  # pulled from the mirror, then checked
    assert info.tag == tag_for(2) and (tmp_path / "new" / "checkpoints" / tag_for(2) / COMPLETE_FILE).is_file()
    # Starting over where a run left checkpoints would lose them: refused, naming both ways out.
    with pytest.raises(ValueError, match="holds an earlier run's checkpoints \\(newest: step 2\\): pass --resume"):
        resume_point(tmp_path / "new", TrainConfig(), 2, resume=False)


def test_live_metrics_are_served_in_prometheus_format():
    from components.training.metrics import TrainMetrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = TrainMetrics(port, run="run-7", stage=1)
    try:
        metrics.progress(
            12, 40, {"loss": 2.5, "text_loss": 1.5}, {"llm": 5e-5, "modules": 2e-4}, 30.0, 900.0, 0.002, None
        )
        metrics.checkpoint(10)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert 'omni_train_step{run="run-7",stage="1"} 12.0' in text
    assert 'omni_train_loss{part="text_loss",run="run-7",stage="1"} 1.5' in text
    assert 'omni_train_learning_rate{group="llm",run="run-7",stage="1"} 5e-05' in text
    assert 'omni_train_checkpoint_step{run="run-7",stage="1"} 10.0' in text
    assert 'omni_train_memory_bytes{kind="peak_rss"' in text
    assert "omni_train_mfu{" not in text  # no known peak on CPU: not computed, not reported as 0


def test_fault_specs_and_deepspeed_overrides():
    assert parse_fault("rank1@step5") == (1, "step", 5)
    assert parse_fault("rank0@checkpoint12") == (0, "checkpoint", 12)
    with pytest.raises(ValueError, match="rank<R>@step<N>"):
        parse_fault("kill rank 1")
    ds = deepspeed_config(
        TrainConfig(
            zero_stage=3,
            deepspeed_overrides={
                "zero_optimization": {"stage3_param_persistence_threshold": 0},
                "bf16": {"enabled": True},
            },
        )
    )
    assert ds["zero_optimization"]["stage"] == 3 and ds["zero_optimization"]["contiguous_gradients"]  # kept
    assert ds["zero_optimization"]["stage3_param_persistence_threshold"] == 0 and ds["bf16"]["enabled"]
    assert asdict(TrainPosition()) == {"step": 0, "epoch": 0, "batches_in_epoch": 0, "samples": 0, "elapsed_s": 0.0}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"precision": "fp16"}, "precision='fp16'"),
        ({"lora_r": 8}, "set llm_path"),
        ({"lora_r": 8, "stage": 2}, "lora_r is for stage 1"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
        ({"llm_path": "/nowhere/qwen"}, "llm_path='/nowhere/qwen' is not a local transformers checkpoint"),
        ({"emotion_encoder_path": "/nowhere/model"}, "not an exported Emotion Omni model"),
    ],
)
def test_bad_settings_fail_before_any_rank_starts(tiny_dialogues, tmp_path, overrides, message):
    from components.training.prepare import prepare_run

    with pytest.raises(ValueError, match=message):
        prepare_run(tiny_dialogues, tmp_path, TrainConfig.from_dict(overrides))
