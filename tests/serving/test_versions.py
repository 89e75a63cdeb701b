"""A served repository's versions side by side: what is published, pinning one, staging the candidate, installing
one from a built repository. Files only; the deploy against a live tritonserver is tests/serving/test_deploy_local.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.contracts import TRITON_CANDIDATE_MODEL_NAME, TRITON_MODEL_NAME, TRITON_STREAM_MODEL_NAME
from components.deploy.errors import DeployError
from serving.repository import CONFIG_FILE, MODELS, build_model_repository
from serving.versions import (
    check_published,
    install_version,
    pin_version,
    published_versions,
    remove_candidate,
    restore_config,
    stage_candidate,
    with_version_policy,
)


@pytest.fixture(scope="module")
def built(tiny_model_dir, tmp_path_factory) -> Path:
    """A built repository holding versions 1 and 2 (what an export step leaves)."""
    repo = tmp_path_factory.mktemp("built")
    build_model_repository(tiny_model_dir, repo, version=1)
    return build_model_repository(tiny_model_dir, repo, version=2, lineage={"lineage_id": "run-2"})


def _weights(repo: Path, model: str, version: int) -> Path:
    return repo / model / str(version) / "weights" / "model.safetensors"


def test_each_version_keeps_its_own_config(built):
    for model in MODELS:
        assert (built / model / "1" / CONFIG_FILE).read_text() != (built / model / "2" / CONFIG_FILE).read_text()
        assert 'string_value: "run-2"' in (built / model / "2" / CONFIG_FILE).read_text()
        assert (built / model / CONFIG_FILE).read_text() == (built / model / "2" / CONFIG_FILE).read_text()
    assert published_versions(built) == [1, 2]
    assert published_versions(built / "nowhere") == []


def test_an_unpublished_version_is_refused_naming_what_there_is(built):
    check_published(built, 2, MODELS)
    with pytest.raises(
        DeployError, match=r"version 9 was never published to .*emotion_omni \(it has versions \[1, 2\]\)"
    ):
        check_published(built, 9)


def test_a_version_without_its_config_or_weights_is_refused(built, tmp_path):
    repo = tmp_path / "repo"
    install_version(built, repo, 1)
    (repo / TRITON_MODEL_NAME / "1" / CONFIG_FILE).unlink()
    with pytest.raises(DeployError, match="has no config.pbtxt of its own.*build_model_repository"):
        check_published(repo, 1)
    install_version(built, repo, 2)
    shutil.rmtree(repo / TRITON_MODEL_NAME / "2" / "weights")  # links: the built copy stays
    with pytest.raises(DeployError, match="weights is missing: version 2 is incomplete"):
        check_published(repo, 2)


def test_install_links_a_version_and_never_changes_what_serves(built, tmp_path):
    repo = tmp_path / "served"
    install_version(built, repo, 1)
    pinned = pin_version(repo, TRITON_MODEL_NAME, 1)
    assert pinned == (built / TRITON_MODEL_NAME / "1" / CONFIG_FILE).read_text()  # written as absent: v1's own
    before = (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text()
    install_version(built, repo, 2)
    assert (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text() == before
    assert published_versions(repo) == [1, 2] and published_versions(repo, TRITON_STREAM_MODEL_NAME) == [1, 2]
    for model in MODELS:  # hard links: no second copy of the weights on disk
        assert os.path.samefile(_weights(repo, model, 2), _weights(built, model, 2))
    with pytest.raises(DeployError, match="already exists; a published version is never replaced"):
        install_version(built, repo, 2)
    with pytest.raises(DeployError, match="version 7 was never published"):
        install_version(built, repo, 7)


def test_pin_serves_one_version_with_its_own_config_and_can_be_undone(built, tmp_path):
    repo = tmp_path / "served"
    install_version(built, repo, 1)
    install_version(built, repo, 2)
    first = pin_version(repo, TRITON_MODEL_NAME, 2)
    text = (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text()
    assert text.startswith((repo / TRITON_MODEL_NAME / "2" / CONFIG_FILE).read_text().rstrip("\n"))
    assert text.count("version_policy") == 1 and "version_policy: { specific: { versions: [2] } }" in text
    previous = pin_version(repo, TRITON_MODEL_NAME, 1)
    assert previous == text
    again = (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text()
    assert again.count("version_policy") == 1 and "versions: [1]" in again and "run-2" not in again
    restore_config(repo, TRITON_MODEL_NAME, previous)
    assert (repo / TRITON_MODEL_NAME / CONFIG_FILE).read_text() == text
    assert first != text
    assert not list((repo / TRITON_MODEL_NAME).glob(".*.tmp"))  # the atomic write left nothing behind


def test_a_version_policy_already_there_is_replaced():
    text = 'name: "m"\nversion_policy: { latest: { num_versions: 2 } }\nbackend: "python"\n'
    pinned = with_version_policy(text, 4)
    assert "latest" not in pinned and pinned.count("version_policy") == 1 and 'backend: "python"' in pinned


def test_the_candidate_is_the_version_under_another_name_with_one_instance(built, tmp_path):
    repo = tmp_path / "served"
    install_version(built, repo, 1)
    install_version(built, repo, 2)
    candidate = stage_candidate(repo, 2)
    assert candidate == repo / TRITON_CANDIDATE_MODEL_NAME
    config = (candidate / CONFIG_FILE).read_text()
    assert f'name: "{TRITON_CANDIDATE_MODEL_NAME}"' in config and f'name: "{TRITON_MODEL_NAME}"' not in config
    assert "count: 1" in config and "count: 2" not in config
    assert "version_policy: { specific: { versions: [2] } }" in config
    assert os.path.samefile(candidate / "2" / "weights" / "model.safetensors", _weights(repo, TRITON_MODEL_NAME, 2))
    assert [p.name for p in candidate.iterdir() if p.is_dir()] == ["2"]
    stage_candidate(repo, 1)  # one left behind by a deploy cut short is replaced
    assert [p.name for p in candidate.iterdir() if p.is_dir()] == ["1"]
    remove_candidate(repo)
    assert not candidate.exists()
    assert published_versions(repo) == [1, 2]  # the served versions are untouched
