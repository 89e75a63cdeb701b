"""Training as a TrainJob, against the fake Kubernetes API (tests/components/cluster/fake_kube.py): the run dir
prepared on the shared directory, the result read back, the failing rank named; the last test runs the TrainJob's
real trainer command (torchrun + DeepSpeed, 2 CPU ranks) under the env the torch runtime injects.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from components.cluster.kube import TrainJobError
from components.cluster.settings import ClusterSettings
from components.cluster.trainjob_config import TrainJobConfig
from components.cluster.trainjob_spec import build_trainjob
from components.training import TrainingError
from components.training.trainjob_run import run_trainjob, train_on_cluster
from tests.components.cluster.fake_kube import (
    COMPLETE,
    RUNNING,
    FakeKubeAPI,
    ProcessController,
    ScriptedController,
    condition,
    jobs_status,
)
from tests.components.cluster.test_run import JOB, NAMESPACE, job_config
from tests.components.training.test_training import tiny_train_config


@pytest.fixture
def shared(tmp_path):
    """The 'PVC': one directory that the launcher and the fake pods both see at the same path."""
    (tmp_path / "shared").mkdir()
    return tmp_path / "shared"


@pytest.fixture
def staged(shared, tiny_dialogues):
    """The dataset staged on the shared directory, as train_on_cluster does."""
    shutil.copytree(tiny_dialogues, shared / "dataset")
    return shared / "dataset"


def write_pod_outputs(run_dir):
    """What rank 0 leaves in the run dir of a finished job."""
    step = {"step": 1, "epoch": 0, "loss": 2.5, "text_loss": 2.0, "emotion_loss": 0.3, "user_emotion_loss": 0.2}
    (run_dir / "train_log.jsonl").write_text(json.dumps({**step, "lr": 1e-3, "elapsed_s": 1.0}) + "\n")
    (run_dir / "train_summary.json").write_text(json.dumps({"steps": 1, "world_size": 2, "zero_stage": 2}))


def run(fake, config, shared, dataset, tokenizer):
    return run_trainjob(
        config, shared / "run", dataset, tiny_train_config(tokenizer), name=JOB, api_client=fake.api_client()
    )


def test_run_dir_prepared_on_the_pvc_and_the_result_read_back(shared, staged, tiny_tokenizer):
    script = ScriptedController([RUNNING, COMPLETE], on_get=lambda n: n == 1 and write_pod_outputs(shared / "run"))
    with FakeKubeAPI(script) as fake:
        result = run(fake, job_config(shared), shared, staged, tiny_tokenizer)
    # The job created is exactly build_trainjob's manifest, after the run dir was prepared on the PVC.
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[3] == build_trainjob(job_config(shared), shared / "run", staged, name=JOB, namespace=NAMESPACE)
    assert (shared / "run" / "train_config.json").is_file() and (shared / "run" / "tokenizer.json").is_file()
    assert result.summary["world_size"] == 2 and result.model_dir == shared / "run" / "model"
    assert result.loss_curve.is_file()


def test_a_failed_job_names_the_first_failing_rank(shared, staged, tiny_tokenizer):
    failed = {"conditions": [condition("Failed", "FailedJobs", "node failed")], "jobsStatus": jobs_status(failed=1)}
    log = (
        "[rank0]: RuntimeError: Connection closed by peer\n"  # a rank that lost its peer: not the cause
        "[rank1]: components.audio.io.AudioError: data/u1.wav is not a decodable WAV\n"
    )
    with FakeKubeAPI(ScriptedController([RUNNING, failed], logs={0: log})) as fake:
        with pytest.raises(TrainJobError) as error:
            run(fake, job_config(shared), shared, staged, tiny_tokenizer)
    assert "first rank error: [rank1]: components.audio.io.AudioError" in str(error.value)
    assert f"run dir: {shared / 'run'}" in str(error.value)


def test_a_complete_job_without_a_summary_names_the_mount(shared, staged, tiny_tokenizer):
    """The pods wrote to another volume than the launcher reads: say so instead of a missing-file traceback."""
    with FakeKubeAPI(ScriptedController([COMPLETE])) as fake:
        with pytest.raises(TrainingError, match="completed but .*train_summary.json is missing: do the launcher"):
            run(fake, job_config(shared), shared, staged, tiny_tokenizer)


def test_train_on_cluster_needs_the_mount(tmp_path, tiny_dialogues):
    config = TrainJobConfig(cluster=ClusterSettings(shared_pvc="omni-shared", shared_mount_path=str(tmp_path / "no")))
    with pytest.raises(TrainingError, match="no does not exist here: the launcher must mount PVC 'omni-shared'"):
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
    assert result.summary["trainjob"].startswith("emotion-omni-train-")  # for `omni lineage`
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file() and result.loss_curve.is_file()
    assert not any((shared / "runs").iterdir())  # the staging dir is removed after success
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[3]["spec"]["trainer"]["numProcPerNode"] == 2
    assert "[node-0]" in out.getvalue() and "state: complete" in out.getvalue()
