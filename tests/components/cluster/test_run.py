"""The TrainJob client against a fake Kubernetes API (fake_kube.py), through the real kubernetes client: create,
follow the pods' logs, poll the conditions, clean up, and say why a job failed."""

from __future__ import annotations

import io
import os
import signal

import pytest

from components.cluster.kube import TrainJobError
from components.cluster.run import run_to_completion, should_delete
from components.cluster.settings import ClusterSettings
from components.cluster.trainjob_config import TrainJobConfig
from components.cluster.trainjob_spec import build_trainjob
from tests.components.cluster.fake_kube import (
    COMPLETE,
    RUNNING,
    FakeKubeAPI,
    ScriptedController,
    condition,
    jobs_status,
)

NAMESPACE = "team-a"
JOB = "emotion-omni-train-0a1b2c"


def job_config(shared, **overrides) -> TrainJobConfig:
    """A CPU job on the 'PVC' `shared`: one directory that the launcher and the fake pods both see."""
    cluster = ClusterSettings(shared_pvc="omni-shared", shared_mount_path=str(shared), trainjob_cpu="2")
    return TrainJobConfig(
        **{
            "cluster": cluster,
            "namespace": NAMESPACE,
            "gpus_per_node": 0,
            "procs_per_node": 2,
            "poll_interval_s": 0.02,
            "timeout_s": 30,
            **overrides,
        }
    )


def run(fake, config, out=None, root_cause=None):
    body = build_trainjob(
        config, f"{config.cluster.shared_mount_path}/run", f"{config.cluster.shared_mount_path}/ds", name=JOB
    )
    run_to_completion(config, body, api_client=fake.api_client(), out=out or io.StringIO(), root_cause=root_cause)
    return body


def test_created_running_complete(tmp_path):
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
    )
    out = io.StringIO()
    with FakeKubeAPI(script) as fake:
        body = run(fake, job_config(tmp_path), out)

    # The job created is exactly the manifest, in the config's namespace.
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[1] == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs"
    assert create[3] == body
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


def test_failed_job_raises_with_reason_root_cause_and_log_tail(tmp_path):
    failed = {
        "conditions": [condition("Failed", "FailedJobs", "ReplicatedJob node failed: backoffLimit")],
        "jobsStatus": jobs_status(failed=1),
    }
    log = "".join(f"step {i}\n" for i in range(60)) + "[rank1]: ValueError: bad sample\n[rank0]: closed\n"
    seen = []

    def root_cause(lines):
        seen.extend(lines)
        return next((line for line in lines if "Error" in line), None)

    with FakeKubeAPI(ScriptedController([RUNNING, failed], logs={0: log})) as fake:
        with pytest.raises(TrainJobError) as error:
            run(fake, job_config(tmp_path, log_tail_lines=5), root_cause=root_cause)
    message = str(error.value)
    assert message.startswith(f"TrainJob {NAMESPACE}/{JOB} failed (FailedJobs): ReplicatedJob node failed")
    assert seen[-2:] == ["[rank1]: ValueError: bad sample", "[rank0]: closed"]  # the pods' own lines, unprefixed
    assert "first rank error: [rank1]: ValueError: bad sample" in message
    assert f"run dir: {tmp_path}/run" in message  # from the manifest's annotation
    assert "[node-0] step 58" in message and "[node-0] step 54" not in message  # the last 5 lines only
    assert f"kubectl describe trainjob -n {NAMESPACE} {JOB}" in message  # kept for inspection
    assert not fake.calls("DELETE")


def test_timeout_deletes_the_running_job(tmp_path):
    with FakeKubeAPI(ScriptedController([RUNNING], logs={0: "still going\n"})) as fake:
        with pytest.raises(
            TrainJobError, match="did not finish within 0.2 s \\(last state: running\\); it was deleted"
        ) as error:
            run(fake, job_config(tmp_path, timeout_s=0.2))
    assert "[node-0] still going" in str(error.value)
    assert fake.calls("DELETE") and not fake.jobs


def test_suspended_then_transient_api_errors_then_complete(tmp_path):
    suspended = {"conditions": [condition("Suspended", "Suspended", "queued by Kueue")]}
    out = io.StringIO()
    with FakeKubeAPI(ScriptedController([suspended, RUNNING, COMPLETE])) as fake:
        fake.errors["get"].extend([503, 503])  # an API server restart: tolerated
        run(fake, job_config(tmp_path), out)
    assert "state: suspended (Suspended: queued or paused)" in out.getvalue()
    assert "API error 2/6, retrying" in out.getvalue()


def test_forbidden_create_names_the_rbac(tmp_path):
    with FakeKubeAPI(ScriptedController([RUNNING])) as fake:
        fake.errors["create"].append(403)
        with pytest.raises(TrainJobError, match="HTTP 403.*create/get/delete on trainjobs.trainer.kubeflow.org"):
            run(fake, job_config(tmp_path))
    assert not fake.calls("GET")


def test_sigterm_while_waiting_deletes_the_job(tmp_path):
    """A terminated pipeline run sends the step SIGTERM: the job must not keep its GPUs."""
    script = ScriptedController([RUNNING], on_get=lambda n: n == 2 and os.kill(os.getpid(), signal.SIGTERM))
    with FakeKubeAPI(script) as fake:
        with pytest.raises(TrainJobError, match="stopped by SIGTERM"):
            run(fake, job_config(tmp_path))
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
    assert should_delete(cleanup, finished, succeeded) is delete
