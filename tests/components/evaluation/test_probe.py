"""The user-emotion probe: the model's own encoder and classifier trained alone, scored per split and voice."""

from __future__ import annotations

import json

import pytest

from components.contracts import UNSEEN_VOICE_SPLIT, USER_EMOTIONS
from components.evaluation.probe import ProbeConfig, probe_user_emotion
from components.synthesis import read_manifest
from components.synthesis.taxonomy import HELD_OUT_SPEAKERS
from omni.cli import main


def test_the_probe_scores_both_splits_per_voice_reproducibly_and_the_cli_writes_it(tiny_dialogues, tmp_path, capsys):
    rows = read_manifest(tiny_dialogues)
    config = ProbeConfig(epochs=2, train_turns=6)
    result = probe_user_emotion([tiny_dialogues], tiny_dialogues, config, progress=False)
    assert result.train_turns == 6
    for split in ("test", UNSEEN_VOICE_SPLIT):
        scored = [r for r in rows if r["split"] == split]
        assert result.samples[split] == len(scored)
        matrix = result.confusion[split]
        assert len(matrix) == len(USER_EMOTIONS) and sum(map(sum, matrix)) == len(scored)
        assert [sum(row) for row in matrix] == [sum(r["user_emotion"] == e for r in scored) for e in USER_EMOTIONS]
        assert result.accuracy[split] == pytest.approx(sum(matrix[i][i] for i in range(6)) / len(scored), abs=1e-4)
    assert set(result.by_voice[UNSEEN_VOICE_SPLIT]) <= set(HELD_OUT_SPEAKERS)
    assert not set(result.by_voice["test"]) & set(HELD_OUT_SPEAKERS)
    again = probe_user_emotion([tiny_dialogues], tiny_dialogues, config, progress=False)
    assert (again.accuracy, again.confusion) == (result.accuracy, result.confusion)  # seeded

    assert (
        main(
            [
                "data",
                "probe",
                "--train",
                str(tiny_dialogues),
                "--eval",
                str(tiny_dialogues),
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "probe.json"),
            ]
        )
        == 0
    )
    assert "user-emotion probe: 8 training turns" in capsys.readouterr().out
    written = json.loads((tmp_path / "probe.json").read_text())
    assert written["train_turns"] == 8 and set(written["accuracy"]) == {"test", UNSEEN_VOICE_SPLIT}


def test_the_probe_needs_training_turns_and_a_split_to_score(tiny_dialogues, tmp_path):
    lines = (tiny_dialogues / "manifest.jsonl").read_text().splitlines(keepends=True)
    for name, split in (("no-train", "train"), ("train-only", "test")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "wavs").symlink_to(tiny_dialogues / "wavs")
        (tmp_path / name / "manifest.jsonl").write_text(
            "".join(line for line in lines if (json.loads(line)["split"] == "train") == (split == "test"))
        )
    with pytest.raises(ValueError, match="no training turns"):
        probe_user_emotion([tmp_path / "no-train"], tiny_dialogues, ProbeConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="has no test or test_unseen_voice split"):
        probe_user_emotion([tiny_dialogues], tmp_path / "train-only", ProbeConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="epochs=0"):
        ProbeConfig(epochs=0)
