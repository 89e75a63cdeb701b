"""TrainJobConfig is placed by ClusterSettings: the pipeline's compile-time JSON round-trips into the same settings."""

from __future__ import annotations

import json

import pytest

from components.cluster.settings import TRAINJOB_FIELDS, ClusterSettings
from components.cluster.trainjob_config import TrainJobConfig, compile_time_json
from components.errors import ConfigError

IMAGE = "ghcr.io/empathy-omni/omni-components:0.1.0"


def test_compile_time_json_round_trips_the_clusters_trainjob_settings():
    settings = ClusterSettings(
        shared_pvc="omni-shared",
        shared_mount_path="/shared",
        trainjob_runtime="torch-distributed",
        trainjob_memory="64Gi",
        accelerator_type="amd.com/gpu",
        gpu_node_selector={"pool": "mi300"},
        mlflow_secret="other-credentials",  # not the TrainJob's: stays out of the train step's JSON
    )
    data = json.loads(compile_time_json(settings, IMAGE))
    assert set(data) == {"cluster", "image"} and set(data["cluster"]) == set(TRAINJOB_FIELDS)

    config = TrainJobConfig.from_dict({**data, "num_nodes": 2, "gpus_per_node": 8, "lineage_id": "run-1"})
    config.validate()
    assert all(getattr(config.cluster, name) == getattr(settings, name) for name in TRAINJOB_FIELDS)
    assert config.cluster.gpu_tolerations == settings.gpu_tolerations  # a tuple again, as the frozen settings hold
    assert config.cluster.mlflow_secret == ClusterSettings.mlflow_secret
    assert config.image == IMAGE and config.num_nodes == 2 and config.ranks_per_node == 8


def test_unknown_keys_are_named_at_both_levels():
    with pytest.raises(ConfigError, match=r"unknown TrainJobConfig keys \['gpus'\]"):
        TrainJobConfig.from_dict({"gpus": 2})
    with pytest.raises(ConfigError, match=r"unknown ClusterSettings keys \['pvc'\]"):
        TrainJobConfig.from_dict({"cluster": {"pvc": "omni-shared"}})


def test_ranks_per_node():
    assert TrainJobConfig(gpus_per_node=4).ranks_per_node == 4
    assert TrainJobConfig(gpus_per_node=4, procs_per_node=2).ranks_per_node == 2
    assert TrainJobConfig(gpus_per_node=0).ranks_per_node == 1  # CPU-only nodes: one rank unless told
