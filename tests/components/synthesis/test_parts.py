"""A build fanned out over machines (the pipeline's ParallelFor): each part speaks every parts-th shard into its own
directory, and the merge makes the dataset a one-machine build makes, byte for byte."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.synthesis import SynthesisError, merge_parts, plan_parts, synthesize_part
from components.synthesis.shards import SHARD_DIR
from tests.components.synthesis.test_shards import SHARDED, files, spoken, spoken_log  # noqa: F401 (fixtures)


def test_parts_merge_to_the_bytes_of_a_one_machine_build(tiny_dataset, tmp_path, spoken_log):  # noqa: F811
    assert plan_parts(SHARDED, 2) == [0, 1] and plan_parts(SHARDED, 9) == [0, 1, 2, 3, 4]  # 5 shards at most
    first = synthesize_part(SHARDED, tmp_path / "part-0", part=0, parts=2, progress=False)
    assert spoken(spoken_log) == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17]  # shards 0, 2 and 4
    synthesize_part(replace(SHARDED, workers=1), tmp_path / "part-1", part=1, parts=2, progress=False)
    assert first.shards == 3 and len(first.rows) == 10

    summary = merge_parts(SHARDED, [tmp_path / "part-1", tmp_path / "part-0"], tmp_path / "data", progress=False)
    assert summary.n == 18 and summary.shards == 5
    assert files(tmp_path / "data") == files(tiny_dataset.out_dir)
    assert not (tmp_path / ".data.partial").exists()
    assert (tmp_path / "part-0" / SHARD_DIR / "shard-00000.jsonl").is_file()  # the parts are inputs: left as they were

    again = synthesize_part(SHARDED, tmp_path / "part-0", part=0, parts=2, progress=False)  # a retried part
    assert again.resumed_shards == 3 and len(spoken(spoken_log)) == 18


def test_a_merge_without_every_shard_or_with_another_builds_part_is_refused(tmp_path):
    synthesize_part(SHARDED, tmp_path / "part-0", part=0, parts=3, progress=False)
    with pytest.raises(
        SynthesisError,
        match=r"3 of 5 shards are finished in none of the 1 parts "
        r"\(first: shard-00001, shard-00002, shard-00004\)",
    ):
        merge_parts(SHARDED, [tmp_path / "part-0"], tmp_path / "data", progress=False)
    synthesize_part(replace(SHARDED, seed=8), tmp_path / "other", part=1, parts=3, progress=False)
    with pytest.raises(SynthesisError, match=r"other settings \(config.seed: 8 there, 7 now\)"):
        merge_parts(SHARDED, [tmp_path / "part-0", tmp_path / "other"], tmp_path / "data", progress=False)
    with pytest.raises(SynthesisError, match="no synthesize_part output"):
        merge_parts(SHARDED, [tmp_path], tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("part, parts", [(2, 2), (-1, 2), (0, 0)])
def test_a_part_outside_the_plan_is_refused(tmp_path, part, parts):
    with pytest.raises(ValueError, match="part"):
        synthesize_part(SHARDED, tmp_path / "p", part=part, parts=parts, progress=False)
    with pytest.raises(ValueError, match="parts=0 must be an int >= 1"):
        plan_parts(SHARDED, 0)
