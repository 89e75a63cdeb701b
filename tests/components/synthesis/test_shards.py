"""Sharded synthesis: the same bytes whatever the sharding, and a stopped build (killed, full disk, any error) that
resumes to exactly the dataset an unbroken run makes, locally and on S3, redoing only the unfinished shards."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from components.storage import StorageError, download_directory, list_objects
from components.synthesis import EspeakSpeech, SynthesisConfig, read_manifest, synthesize_dataset
from components.synthesis import dataset as dataset_module
from components.synthesis.shards import FINGERPRINT_FILE, SHARD_DIR, SynthesisError, locked, prepare_work_dir

REPO = Path(__file__).resolve().parents[3]
# tiny_config (conftest) in 5 shards: 4 + 4 + 4 + 4 + 2 dialogues.
SHARDED = SynthesisConfig(n=18, seed=7, channels=None, filters=None, shard_size=4, workers=2)
_real_speak = dataset_module._speak


def files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def spoken(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split()) if log.exists() else []


def recording_speak(voices, plan, root, config):
    """dataset._speak that also logs the plan index, and fails at index OMNI_TEST_FAIL_AT; module-level so it
    pickles into the worker processes."""
    if plan.index == int(os.environ.get("OMNI_TEST_FAIL_AT", -1)):
        raise RuntimeError("the machine went away")
    with open(os.environ["OMNI_TEST_SPOKEN_LOG"], "a") as log:
        log.write(f"{plan.index}\n")
    return _real_speak(voices, plan, root, config)


@pytest.fixture()
def spoken_log(tmp_path, monkeypatch) -> Path:
    """Every dialogue synthesize_dataset speaks from here on, in any process, is logged to this file."""
    log = tmp_path / "spoken.log"
    monkeypatch.setenv("OMNI_TEST_SPOKEN_LOG", str(log))
    monkeypatch.setattr(dataset_module, "_speak", recording_speak)
    return log


def test_same_seed_gives_the_same_bytes_whatever_the_shards_and_workers(tiny_dataset, tmp_path):
    """tiny_dataset is one shard of 18; here 5 shards on 2 processes, finishing in any order."""
    summary = synthesize_dataset(SHARDED, tmp_path / "data", progress=False)
    assert (summary.shards, summary.resumed_shards) == (5, 0)
    assert files(summary.out_dir) == files(tiny_dataset.out_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no work directory, no shards/ left


def test_a_killed_build_resumes_to_the_same_bytes_redoing_only_unfinished_shards(tiny_dataset, tmp_path, spoken_log):
    # The build is SIGKILLed, parent and worker together, while speaking dialogue index 13 (shard 3). One worker
    # runs the shards in order, so shards 0-2 are finished and shard 3 has left a stray wav behind.
    script = textwrap.dedent("""
        import os, signal, sys
        from components.synthesis import SynthesisConfig, dataset, synthesize_dataset

        speak = dataset._speak
        def dying(voices, plan, root, config):
            if plan.index == 13:
                os.killpg(0, signal.SIGKILL)
            return speak(voices, plan, root, config)

        dataset._speak = dying
        config = SynthesisConfig(n=18, seed=7, channels=None, filters=None, shard_size=4, workers=1)
        synthesize_dataset(config, sys.argv[1], progress=False)
    """)
    out_dir = tmp_path / "data"
    killed = subprocess.run(
        [sys.executable, "-c", script, str(out_dir)],
        cwd=REPO,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    work = tmp_path / ".data.partial"
    assert sorted(p.name for p in (work / SHARD_DIR).iterdir()) == [
        FINGERPRINT_FILE,
        "shard-00000.jsonl",
        "shard-00001.jsonl",
        "shard-00002.jsonl",
    ]
    assert (work / "wavs" / "000013_user.wav").exists() and not out_dir.exists()

    # Resumed with another worker count (not part of the fingerprint: it does not change the bytes).
    summary = synthesize_dataset(replace(SHARDED, workers=2), out_dir, progress=False)
    assert (summary.shards, summary.resumed_shards) == (5, 3)
    assert spoken(spoken_log) == list(range(12, 18))  # shards 3 and 4, from scratch
    assert files(out_dir) == files(tiny_dataset.out_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "spoken.log"]


def test_a_partial_build_of_other_settings_is_refused_not_deleted(tmp_path, monkeypatch):
    def broken(self, text, emotion, speaker, rng=None):
        raise RuntimeError("espeak crashed")

    monkeypatch.setattr(EspeakSpeech, "synthesize", broken)
    with pytest.raises(SynthesisError, match="espeak crashed.*0 of 5 shards .*run the same command again"):
        synthesize_dataset(SHARDED, tmp_path / "data", progress=False)
    monkeypatch.undo()
    fingerprint = tmp_path / ".data.partial" / SHARD_DIR / FINGERPRINT_FILE
    before = fingerprint.read_bytes()
    with pytest.raises(
        FileExistsError,
        match=r"other settings \(config.seed: 7 there, 8 now\); rerun with the "
        r"original settings to finish it, or delete it",
    ):
        synthesize_dataset(replace(SHARDED, seed=8), tmp_path / "data", progress=False)
    assert fingerprint.read_bytes() == before


@pytest.mark.parametrize("shard_size", [0, 2.5])
def test_config_rejects_a_bad_shard_size(shard_size):
    with pytest.raises(ValueError, match="shard_size=.* must be an int >= 1"):
        SynthesisConfig(shard_size=shard_size)


def test_a_work_dir_is_started_over_only_when_asked_and_only_if_it_is_a_build(tmp_path):
    work = tmp_path / "work"
    prepare_work_dir(work, {"config": {"seed": 1}})
    (work / "wavs").mkdir()
    prepare_work_dir(work, {"config": {"seed": 2}}, resume=False)
    assert not (work / "wavs").exists()
    assert (work / SHARD_DIR / FINGERPRINT_FILE).read_text().count('"seed": 2') == 1
    stranger = tmp_path / "home"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a partial synthesis build; delete it or pick another"):
        prepare_work_dir(stranger, {"config": {}}, resume=False)
    assert (stranger / "notes.txt").read_text() == "keep me"


def test_a_second_run_of_the_same_build_is_refused_while_the_first_runs(tmp_path):
    with locked(tmp_path / ".data.partial"):  # what the first run holds while it runs
        with pytest.raises(FileExistsError, match="another synthesis run is building .*data.partial right now"):
            synthesize_dataset(SHARDED, tmp_path / "data", progress=False)


def test_a_full_disk_keeps_the_finished_shards_and_says_how_to_resume(tmp_path, monkeypatch):
    real_save_wav = dataset_module.save_wav

    def full_disk(path, wave, *args):
        if Path(path).name.startswith("000010"):  # shard 2's second dialogue
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save_wav(path, wave, *args)

    monkeypatch.setattr(dataset_module, "save_wav", full_disk)
    with pytest.raises(
        SynthesisError,
        match=r"no space left on the disk .*2 of 5 shards are finished and kept in "
        r".*Free space on the disk .*run the same command again to resume",
    ) as err:
        synthesize_dataset(replace(SHARDED, workers=1), tmp_path / "data", progress=False)
    assert err.value.__cause__.errno == errno.ENOSPC
    work = tmp_path / ".data.partial"
    assert sorted(p.name for p in (work / SHARD_DIR).glob("shard-*")) == ["shard-00000.jsonl", "shard-00001.jsonl"]
    assert len(list((work / "wavs").glob("00000[1-8]_*.wav"))) == 16


def test_s3_output_resumes_from_the_remote_shards_on_a_fresh_machine(
    tiny_dataset, tmp_path, s3_env, monkeypatch, spoken_log
):
    uri = f"s3://{s3_env}/models/datasets/tiny"
    monkeypatch.setenv("OMNI_TEST_FAIL_AT", "9")  # in shard 2; one worker runs the shards in order
    with pytest.raises(SynthesisError, match="went away; 2 of 5 shards .* and s3://.*/tiny/.partial"):
        synthesize_dataset(replace(SHARDED, workers=1), uri, progress=False, work_dir=tmp_path / "machine-1")
    assert sorted(n for n in list_objects(uri) if "/shards/" in n) == [
        f".partial/shards/{name}" for name in (FINGERPRINT_FILE, "shard-00000.jsonl", "shard-00001.jsonl")
    ]

    spoken_log.unlink()
    monkeypatch.delenv("OMNI_TEST_FAIL_AT")
    summary = synthesize_dataset(SHARDED, uri, progress=False, work_dir=tmp_path / "machine-2")
    assert (summary.shards, summary.resumed_shards) == (5, 2)
    assert spoken(spoken_log) == list(range(8, 18))  # shards 2-4; shards 0 and 1 came from the prefix
    assert summary.out_dir.startswith("s3://") and not (tmp_path / "machine-2").exists()
    assert not any(name.startswith(".partial/") for name in list_objects(uri))
    local = download_directory(uri, tmp_path / "downloaded")
    assert len(read_manifest(local)) == 18
    assert files(local) == files(tiny_dataset.out_dir)

    with pytest.raises(FileExistsError, match="already holds a dataset"):
        synthesize_dataset(SHARDED, uri, progress=False)


def test_s3_output_without_credentials_fails_before_any_shard(tmp_path, s3_env, monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.*nothing was synth"):
        synthesize_dataset(SHARDED, f"s3://{s3_env}/models/datasets/nope", progress=False, work_dir=tmp_path / "w")
    assert list(tmp_path.iterdir()) == []
