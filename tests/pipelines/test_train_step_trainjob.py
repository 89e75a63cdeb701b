"""The train step's `trainjob` branch, run by kfp.local like any step: it stages the dataset on the shared
directory, creates a TrainJob through a kubeconfig-loaded client (pointing at the fake Kubernetes API, whose
stand-in controller runs the job's real trainer command), waits, and returns the model as its output."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml
from kfp import dsl, local
from kfp.dsl import Dataset

from components.cluster.settings import ClusterSettings
from components.cluster.trainjob_config import compile_time_json
from pipelines import steps
from tests.components.cluster.fake_kube import FakeKubeAPI, ProcessController
from tests.conftest import TINY_PIPELINE_MODEL


def kubeconfig(path, server: str, namespace: str):
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            }
        )
    )
    return path


def run_train_step(tmp_path, dataset_dir, backend: str, trainjob: dict, checkpoint_root: str = ""):
    @dsl.pipeline(name="train-step")
    def train_only():
        data = dsl.importer(artifact_uri=str(dataset_dir), artifact_class=Dataset, reimport=False)
        steps.train(
            dataset=data.output,
            epochs=1,
            nproc=2,
            max_steps=2,
            seed=0,
            config_json=json.dumps(TINY_PIPELINE_MODEL),
            backend=backend,
            num_nodes=1,
            gpus_per_node=0,
            trainjob_json=json.dumps(trainjob),
            checkpoint_root=checkpoint_root,
            run_id="run-1",
        )

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"), raise_on_error=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_only()
    (output,) = (tmp_path / "kfp").glob("train-step-*/train/executor_output.json")
    return json.loads(output.read_text())


def test_trainjob_backend_through_the_step(tmp_path, tiny_dialogues, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    cluster = ClusterSettings(shared_pvc="omni-shared", shared_mount_path=str(shared), trainjob_cpu="2")
    with FakeKubeAPI(ProcessController(tmp_path)) as fake:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", fake.url, "team-b")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod: use the kubeconfig
        output = run_train_step(
            tmp_path,
            tiny_dialogues,
            "trainjob",
            {  # what the compiled pipeline passes, plus a fast poll
                **json.loads(compile_time_json(cluster, steps.COMPONENT_IMAGE)),
                "poll_interval_s": 0.2,
            },
            checkpoint_root=str(shared / "checkpoints"),
        )
    (create,) = fake.calls("POST", "/trainjobs")
    assert create[3]["spec"]["trainer"]["args"][-1] == "--resume"  # a retried step picks up the mirror's newest
    assert create[1] == "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-b/trainjobs"  # the context's
    assert create[3]["spec"]["trainer"]["numProcPerNode"] == 2  # CPU nodes run nproc ranks
    model = output["artifacts"]["model"]["artifacts"][0]
    mirrored = list((shared / "checkpoints" / "run-1" / "stage1").glob("step*/complete.json"))
    last = f"step{int(model['metadata']['steps']):08d}"
    assert [p.parent.name for p in mirrored] == [last]  # the step's final checkpoint outlives its pod
    assert model["metadata"]["train_backend"] == "trainjob" and model["metadata"]["world_size"] == 2
    assert (Path(model["uri"]) / "model.safetensors").is_file()
    assert not any((shared / "runs").iterdir())  # staged files removed after success


def test_unknown_backend_is_refused(tmp_path, tiny_dialogues, capfd):
    with pytest.raises(RuntimeError):
        run_train_step(tmp_path, tiny_dialogues, "slurm", {})
    out, err = capfd.readouterr()
    assert "train_backend='slurm': use 'local'" in out + err
