"""The dataset as an artifact: schema, label balance, splits, audio format, card, determinism, out_dir rules."""

import json
from collections import Counter
from dataclasses import replace

import pytest
import soundfile as sf

from components.audio import load_wav
from components.contracts import (
    DATASET_CARD_FILE,
    DATASET_STATS_FILE,
    DOMAINS,
    EMPATHY_MAP,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    RESPONSE_EMOTIONS,
    SAMPLE_RATE,
    SPLITS,
    UNSEEN_VOICE_SPLIT,
    USER_EMOTIONS,
)
from components.synthesis import EspeakSpeech, SynthesisConfig, read_manifest, synthesize_dataset
from components.synthesis.shards import SynthesisError
from components.synthesis.taxonomy import HELD_OUT_SPEAKERS, SPEAKERS


def test_manifest_rows_follow_the_schema(tiny_dataset, tiny_config):
    rows = read_manifest(tiny_dataset.out_dir)
    assert len(rows) == tiny_config.n == tiny_dataset.n
    lines = (tiny_dataset.out_dir / MANIFEST_FILE).read_text().splitlines()
    assert all(list(json.loads(line)) == list(MANIFEST_COLUMNS) for line in lines)
    for row in rows:
        assert row["split"] in SPLITS and row["domain"] in DOMAINS
        assert row["speaker"] in (HELD_OUT_SPEAKERS if row["split"] == UNSEEN_VOICE_SPLIT else SPEAKERS)
        assert row["user_emotion"] in USER_EMOTIONS and row["response_emotion"] in RESPONSE_EMOTIONS
        assert row["response_emotion"] in dict(EMPATHY_MAP[row["user_emotion"]])
        assert row["user_wav"] == f"wavs/{row['id']}_user.wav"
        assert (row["user_text"] + row["response_text"]).isascii()


def test_user_emotions_are_balanced_and_in_every_split(tiny_dataset):
    rows = read_manifest(tiny_dataset.out_dir)
    counts = Counter(row["user_emotion"] for row in rows)
    assert set(counts) == set(USER_EMOTIONS) and max(counts.values()) - min(counts.values()) <= 1
    for split in SPLITS:
        assert {row["user_emotion"] for row in rows if row["split"] == split} == set(USER_EMOTIONS)


def test_unseen_voice_split_is_spoken_only_by_voices_no_training_turn_uses(tiny_dataset):
    rows = read_manifest(tiny_dataset.out_dir)
    unseen = {row["speaker"] for row in rows if row["split"] == UNSEEN_VOICE_SPLIT}
    seen = {row["speaker"] for row in rows if row["split"] != UNSEEN_VOICE_SPLIT}
    assert unseen and seen and not unseen & seen
    assert {speaker.partition(":")[0] for speaker in seen} == {"espeak-ng", "flite"}  # festival is held out whole


def test_wavs_are_16k_mono_pcm16_non_silent_and_match_durations(tiny_dataset):
    for row in read_manifest(tiny_dataset.out_dir):
        for side in ("user", "response"):
            path = tiny_dataset.out_dir / row[f"{side}_wav"]
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
            wave = load_wav(path)  # refuses digital silence
            assert abs(len(wave) / SAMPLE_RATE - row[f"{side}_duration_s"]) < 1e-3


def test_card_and_stats_match_the_manifest(tiny_dataset, tiny_config):
    rows = read_manifest(tiny_dataset.out_dir)
    stats = json.loads((tiny_dataset.out_dir / DATASET_STATS_FILE).read_text())
    card = (tiny_dataset.out_dir / DATASET_CARD_FILE).read_text()
    assert stats["n_dialogues"] == len(rows) and stats["seed"] == tiny_config.seed
    for column in ("split", "user_emotion", "response_emotion", "domain", "speaker"):
        expected = Counter(row[column] for row in rows)
        assert {k: v for k, v in stats["counts"][column].items() if v} == dict(expected)
        for label, n in expected.items():
            assert f"| {label} | {n} |" in card
    hours = sum(row["user_duration_s"] + row["response_duration_s"] for row in rows) / 3600
    assert stats["audio_hours"]["total"] == pytest.approx(hours, abs=1e-4)
    assert f"{hours:.3f} h in total" in card and f"Seed: {tiny_config.seed}." in card
    assert tiny_dataset.counts == stats["counts"]


def test_same_seed_gives_the_same_dataset_whatever_the_workers(tiny_dataset, tmp_path, tiny_config):
    again = synthesize_dataset(replace(tiny_config, workers=1), tmp_path / "again", progress=False)
    for name in (MANIFEST_FILE, DATASET_STATS_FILE, "wavs/000001_user.wav", "wavs/000014_response.wav"):
        assert (again.out_dir / name).read_bytes() == (tiny_dataset.out_dir / name).read_bytes()


def test_channels_degrade_user_turns_as_recorded_and_leave_the_rest(tiny_dataset, tmp_path, tiny_config):
    """With channels on, each user turn is the clean turn through the chain its row records (remade from the
    record alone); replies, texts and prosody draws are as without channels; the card and stats count them."""
    import numpy as np

    from components.audio.channels import ChannelConfig, apply_channel, channel_from_json

    noisy = synthesize_dataset(
        replace(tiny_config, channels=ChannelConfig(clean_prob=0.2)), tmp_path / "noisy", progress=False
    )
    rows, clean_rows = read_manifest(noisy.out_dir), read_manifest(tiny_dataset.out_dir)
    assert [r["user_text"] for r in rows] == [r["user_text"] for r in clean_rows]
    assert any(r["user_channel"] for r in rows) and all(not r["user_channel"] for r in clean_rows)
    for row, clean in zip(rows, clean_rows):
        assert (
            load_wav(noisy.out_dir / row["response_wav"]).tolist()
            == load_wav(tiny_dataset.out_dir / clean["response_wav"]).tolist()
        )
        remade = apply_channel(
            load_wav(tiny_dataset.out_dir / clean["user_wav"]), channel_from_json(row["user_channel"])
        )
        assert np.abs(load_wav(noisy.out_dir / row["user_wav"]) - remade).max() <= 2 / 32768  # 16-bit rounding
    stats = json.loads((noisy.out_dir / DATASET_STATS_FILE).read_text())
    assert stats["counts"]["user_channel"]["clean"] == sum(not r["user_channel"] for r in rows)
    assert stats["generator"]["channels"]["clean_prob"] == 0.2
    assert "user turns went through seeded" in (noisy.out_dir / DATASET_CARD_FILE).read_text()
    assert "Channels: none" in (tiny_dataset.out_dir / DATASET_CARD_FILE).read_text()


def test_another_seed_gives_other_texts(tiny_dataset, tmp_path, tiny_config):
    other = synthesize_dataset(replace(tiny_config, seed=tiny_config.seed + 1), tmp_path / "other", progress=False)
    texts = [[row["user_text"] for row in read_manifest(d)] for d in (other.out_dir, tiny_dataset.out_dir)]
    assert texts[0] != texts[1]


def test_refuses_a_non_empty_out_dir(tmp_path, tiny_config):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not empty; pass a new directory, or overwrite=True"):
        synthesize_dataset(tiny_config, tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="refusing to overwrite .* not a previous dataset"):
        synthesize_dataset(tiny_config, tmp_path, overwrite=True, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_previous_dataset(tmp_path, tiny_config):
    out_dir = tmp_path / "data"
    synthesize_dataset(tiny_config, out_dir, progress=False)
    (out_dir / "stale.txt").write_text("from an older run")
    summary = synthesize_dataset(replace(tiny_config, seed=1), out_dir, overwrite=True, progress=False)
    assert summary.n == tiny_config.n and not (out_dir / "stale.txt").exists()
    assert json.loads((out_dir / DATASET_STATS_FILE).read_text())["seed"] == 1


def test_a_failed_run_keeps_its_finished_shards_and_a_rerun_completes(tiny_dataset, tmp_path, monkeypatch, tiny_config):
    """out_dir stays untouched; the finished shards wait beside it in .data.partial/ for the rerun to finish."""
    real = EspeakSpeech.synthesize
    calls = []  # counted in the one worker process, which speaks the shards in order

    def broken(self, text, emotion, speaker, rng=None):
        calls.append(text)
        if len(calls) == 10:  # the second dialogue of shard 2
            raise RuntimeError("espeak crashed")
        return real(self, text, emotion, speaker, rng)

    monkeypatch.setattr(EspeakSpeech, "synthesize", broken)
    config = replace(tiny_config, shard_size=4, workers=1)
    with pytest.raises(SynthesisError, match="espeak crashed; 2 of 5 shards are finished .* run the same command"):
        synthesize_dataset(config, tmp_path / "data", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.partial"]
    monkeypatch.undo()
    summary = synthesize_dataset(config, tmp_path / "data", progress=False)
    assert (summary.shards, summary.resumed_shards) == (5, 2)
    assert (summary.out_dir / MANIFEST_FILE).read_bytes() == (tiny_dataset.out_dir / MANIFEST_FILE).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 5}, "use n >= 18"),
        ({"unseen_voice_fraction": 0.9}, "must be in"),
        ({"engines": ("espeak-ng", "mbrola")}, "use some of"),
        ({"engines": ("espeak-ng", "flite"), "held_out_speakers": ("festival:kal_diphone",)}, "are not voices of"),
        ({"engines": ("festival",), "held_out_speakers": ("festival:kal_diphone",)}, "leave no voice for training"),
        ({"test_fraction": 1.0}, "between 0 and 1"),
        ({"workers": 0}, "must be an int >= 1"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        SynthesisConfig(**changes)


def test_fills_an_existing_empty_directory(tmp_path, tiny_config):
    out_dir = tmp_path / "mounted"
    out_dir.mkdir()
    summary = synthesize_dataset(tiny_config, out_dir, progress=False)
    assert summary.out_dir == out_dir and len(read_manifest(out_dir)) == tiny_config.n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mounted"]
