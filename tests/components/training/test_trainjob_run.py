"""The TrainJob launcher against a fake Kubernetes API (fake_kube.py), through the real kubernetes client.

No cluster can run here; the fake serves the five endpoints the launcher calls, and the last test runs the
TrainJob's real trainer command (torchrun + DeepSpeed, 2 CPU ranks) under the env the torch runtime injects.
"""

from __future__ import annotations

import io
import json
import os
import signal

import pytest

from components.training import TrainingError
from components.training.trainjob import TrainJobConfig, build_trainjob
from components.training.trainjob_run import _should_delete, run_trainjob, train_on_cluster
from tests.components.training.fake_kube import (
    COMPLETE,
    RUNNING,
    FakeKubeAPI,
    ProcessController,
    ScriptedController,
    condition,
    jobs_status,
)
from tests.components.training.test_training import tiny_train_config

NAMESPACE = "team-a"
JOB = "emotion-omni-train-0a1b2c"


@pytest.fixture
def shared(tmp_path):
    """The 'PVC': one directory that the launcher and the fake pods both see at the same path."""
    (tmp_path / "shared").mkdir()
    return tmp_path / "shared"


def job_config(shared, **overrides) -> TrainJobConfig:
    return TrainJobConfig(
        **{
            "namespace": NAMESPACE,
            "pvc": "omni-shared",
            "mount_path": str(shared),
            "gpus_per_node": 0,
            "procs_per_node": 2,
            "cpu": "2",
            "memory": "4Gi",
            "poll_interval_s": 0.02,
            "timeout_s": 30,
            **overrides,
        }
    )


def write_pod_outputs(run_dir):
    """What rank 0 leaves in the run dir of a finished job."""
    (run_dir / "train_log.jsonl").write_text(
        json.dumps(
            {
                "step": 1,
                "epoch": 0,
                "loss": 2.5,
                "text_loss": 2.0,
                "emotion_loss": 0.3,
                "user_emotion_loss": 0.2,
                "lr": 1e-3,
                "elapsed_s": 1.0,
            }
        )
        + "\n"
    )
    (run_dir / "train_summary.json").write_text(json.dumps({"steps": 1, "world_size": 2, "zero_stage": 2}))


def run(fake, config, shared, dialogues, tokenizer, out=None):
    return run_trainjob(
        config,
        shared / "run",
        dialogues,
        tiny_train_config(tokenizer),
        name=JOB,
        api_client=fake.api_client(),
        out=out or io.StringIO(),
    )


@pytest.fixture
def staged(shared, tiny_dialogues):
    """The dataset staged on the shared directory, as train_on_cluster does."""
    import shutil

    shutil.copytree(tiny_dialogues, shared / "dataset")
    return shared / "dataset"


def test_created_running_complete(shared, staged, tiny_tokenizer):
    script = ScriptedController(
        [
            {},
            RUNNING,
            {
                **RUNNING,
                "trainerStatus": {
                    "progressPercentage": 50,
                    "estimatedRemainingSeconds": 9,
                    "lastUpdatedTime": "2026-11-25T10:00:00Z",
                },
            },
            COMPLETE,
        ],
        logs={0: "train: 1 step loss=2.5\n", 1: "rank 1 ready\n"},
        pods_from=1,
        on_get=lambda n: n == 3 and write_pod_outputs(shared / "run"),
    )
    out = io.StringIO()
    with FakeKubeAPI(script) as fake:
        result = run(fake, job_config(shared), shared, staged, tiny_tokenizer, out)

    # The job created is exactly build_trainjob's manifest, after the run dir was prepared on the PVC.
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[1] == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs"
    assert create[3] == build_trainjob(job_config(shared), shared / "run", staged, name=JOB, namespace=NAMESPACE)
    assert (shared / "run" / "train_config.json").is_file() and (shared / "run" / "tokenizer.json").is_file()
    # Pods found by the JobSet label; logs followed from the trainer container.
    pods = fake.calls("GET", "/pods")
    assert pods[0][2]["labelSelector"] == [f"jobset.sigs.k8s.io/jobset-name={JOB}"]
    logs = [r for r in fake.requests if r[1].endswith("/log")]
    assert len(logs) == 2 and all(r[2]["container"] == ["node"] and r[2]["follow"] == ["True"] for r in logs)
    text = out.getvalue()
    for line in (
        "[node-0] train: 1 step loss=2.5",
        "[node-1] rank 1 ready",
        "state: running",
        "progress: 50%, about 9 s left",
        "state: complete",
        f"deleted TrainJob {NAMESPACE}/{JOB}",
    ):
        assert line in text
    assert fake.calls("DELETE")  # cleanup=on_success
    assert result.summary["world_size"] == 2 and result.model_dir == shared / "run" / "model"
    assert result.loss_curve.is_file()


def test_failed_job_raises_with_reason_and_log_tail(shared, staged, tiny_tokenizer):
    failed = {
        "conditions": [condition("Failed", "FailedJobs", "ReplicatedJob node failed: backoffLimit")],
        "jobsStatus": jobs_status(failed=1),
    }
    log = (
        "".join(f"step {i}\n" for i in range(60))
        + "[rank1]: components.audio.io.AudioError: data/u1.wav is not a decodable WAV\n"
        "[rank0]: RuntimeError: Connection closed by peer\n"
    )
    with FakeKubeAPI(ScriptedController([RUNNING, failed], logs={0: log})) as fake:
        with pytest.raises(TrainingError) as error:
            run(fake, job_config(shared, log_tail_lines=5), shared, staged, tiny_tokenizer)
    message = str(error.value)
    assert message.startswith(f"TrainJob {NAMESPACE}/{JOB} failed (FailedJobs): ReplicatedJob node failed")
    assert "first rank error: [rank1]: components.audio.io.AudioError" in message
    assert "[node-0] step 58" in message and "[node-0] step 54" not in message  # the last 5 lines only
    assert f"kubectl describe trainjob -n {NAMESPACE} {JOB}" in message  # kept for inspection
    assert not fake.calls("DELETE")


def test_timeout_deletes_the_running_job(shared, staged, tiny_tokenizer):
    with FakeKubeAPI(ScriptedController([RUNNING], logs={0: "still going\n"})) as fake:
        with pytest.raises(
            TrainingError, match="did not finish within 0.2 s \\(last state: running\\); it was deleted"
        ) as error:
            run(fake, job_config(shared, timeout_s=0.2), shared, staged, tiny_tokenizer)
    assert "[node-0] still going" in str(error.value)
    assert fake.calls("DELETE") and not fake.jobs


def test_suspended_then_transient_api_errors_then_complete(shared, staged, tiny_tokenizer):
    suspended = {"conditions": [condition("Suspended", "Suspended", "queued by Kueue")]}
    script = ScriptedController(
        [suspended, RUNNING, COMPLETE], on_get=lambda n: n == 2 and write_pod_outputs(shared / "run")
    )
    out = io.StringIO()
    with FakeKubeAPI(script) as fake:
        fake.errors["get"].extend([503, 503])  # an API server restart: tolerated
        run(fake, job_config(shared), shared, staged, tiny_tokenizer, out)
    assert "state: suspended (Suspended: queued or paused)" in out.getvalue()
    assert "API error 2/6, retrying" in out.getvalue()


def test_forbidden_create_names_the_rbac(shared, staged, tiny_tokenizer):
    with FakeKubeAPI(ScriptedController([RUNNING])) as fake:
        fake.errors["create"].append(403)
        with pytest.raises(TrainingError, match="HTTP 403.*create/get/delete on trainjobs.trainer.kubeflow.org"):
            run(fake, job_config(shared), shared, staged, tiny_tokenizer)
    assert not fake.calls("GET")


def test_sigterm_while_waiting_deletes_the_job(shared, staged, tiny_tokenizer):
    """A terminated pipeline run sends the step SIGTERM: the job must not keep its GPUs."""
    script = ScriptedController([RUNNING], on_get=lambda n: n == 2 and os.kill(os.getpid(), signal.SIGTERM))
    with FakeKubeAPI(script) as fake:
        with pytest.raises(TrainingError, match="stopped by SIGTERM"):
            run(fake, job_config(shared), shared, staged, tiny_tokenizer)
    assert fake.calls("DELETE")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was only borrowed


@pytest.mark.parametrize(
    "cleanup, finished, succeeded, delete",
    [
        ("on_success", True, True, True),
        ("on_success", True, False, False),
        ("on_success", False, False, True),
        ("always", True, False, True),
        ("never", False, False, False),
        ("never", True, True, False),
    ],
)
def test_cleanup_policy(cleanup, finished, succeeded, delete):
    assert _should_delete(cleanup, finished, succeeded) is delete


def test_train_on_cluster_needs_the_mount(tmp_path, tiny_dialogues):
    config = TrainJobConfig(pvc="omni-shared", mount_path=str(tmp_path / "not-mounted"))
    with pytest.raises(TrainingError, match="not-mounted does not exist here: the launcher must mount PVC"):
        train_on_cluster(tiny_dialogues, tmp_path / "out", config=config)


def test_train_on_cluster_runs_the_real_trainer_command(tmp_path, shared, tiny_dialogues, tiny_tokenizer):
    """The TrainJob's own command (torchrun -m components.training.worker ...) trains 2 DeepSpeed ranks."""
    config = tiny_train_config(tiny_tokenizer, max_steps=2)
    out = io.StringIO()
    with FakeKubeAPI(ProcessController(tmp_path)) as fake:
        result = train_on_cluster(
            tiny_dialogues,
            tmp_path / "out",
            config,
            job_config(shared, procs_per_node=0, poll_interval_s=0.2, timeout_s=300),
            api_client=fake.api_client(),
            out=out,
        )
    assert result.summary["world_size"] == 2 and result.summary["steps"] == 2  # 2 = TrainConfig.nproc
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file() and result.loss_curve.is_file()
    assert not any((shared / "runs").iterdir())  # the staging dir is removed after success
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[3]["spec"]["trainer"]["numProcPerNode"] == 2
    assert "[node-0]" in out.getvalue() and "state: complete" in out.getvalue()
