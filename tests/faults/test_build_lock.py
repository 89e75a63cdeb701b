"""A build of DeepSpeed's op killed mid-way leaves torch's FileBaton lock, on which every later run waits forever:
the launcher removes such a lock before the ranks start, and keeps one a live build holds.

The lock is made by torch's own FileBaton in a real process, which is then SIGKILLed, as a killed build leaves it.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from components.training import TrainConfig, launch
from components.training.build_lock import LOCK_NAME, clear_stale_build_locks, is_stale, lock_holders
from tests.conftest import tiny_config

pytestmark = pytest.mark.faults

# A build in progress, as torch.utils.cpp_extension runs one: the baton acquired (the lock file created and held
# open), then the compiler runs; "building" is printed once the lock exists. torch's own file_baton.py is loaded
# alone (it needs only os and time): importing torch would take seconds.
_BUILDER = """
import importlib.util, os, sys, time
torch_dir = importlib.util.find_spec("torch").submodule_search_locations[0]
spec = importlib.util.spec_from_file_location("file_baton", os.path.join(torch_dir, "utils", "file_baton.py"))
file_baton = importlib.util.module_from_spec(spec)
spec.loader.exec_module(file_baton)
baton = file_baton.FileBaton(sys.argv[1])
assert baton.try_acquire()
print("building", flush=True)
time.sleep(600)
"""


@pytest.fixture()
def building(tmp_path):
    """A live build of op `deepspeed_shm_comm` under tmp_path/extensions: (its process, its lock file)."""
    lock = tmp_path / "extensions" / "deepspeed_shm_comm" / LOCK_NAME
    lock.parent.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", _BUILDER, str(lock)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "building"
    yield process, lock
    process.kill()
    process.wait()


def test_a_lock_left_by_a_killed_build_is_removed_with_a_warning(building, capsys):
    process, lock = building
    extensions = lock.parent.parent
    assert lock_holders(lock) == {process.pid}
    assert clear_stale_build_locks(extensions) == []  # a live build: the ranks wait for it, as they should
    assert lock.exists()

    process.kill()  # SIGKILL: torch's `finally: baton.release()` never runs
    process.wait()
    assert lock.exists() and is_stale(lock)
    started = time.monotonic()
    assert clear_stale_build_locks(extensions) == [lock]

    assert time.monotonic() - started < 5  # one look at /proc, not a wait
    assert not lock.exists()
    assert f"removed {lock}: no process holds it" in capsys.readouterr().err
    # The retry's build now acquires the baton at once instead of waiting on the dead build's.
    from torch.utils.file_baton import FileBaton

    baton = FileBaton(str(lock))
    assert baton.try_acquire()
    baton.release()


def test_train_clears_a_stale_lock_before_it_starts_the_ranks(
    building, tiny_dialogues, tiny_tokenizer, tmp_path, monkeypatch
):
    process, lock = building
    process.kill()
    process.wait()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(lock.parent.parent))  # worker_env passes it on to the ranks
    seen = {}

    class RanksStarted(Exception):
        pass

    def start_ranks(cmd, env, **kwargs):  # instead of torchrun: what the ranks would find
        seen["extensions"], seen["lock_exists"] = env["TORCH_EXTENSIONS_DIR"], lock.exists()
        raise RanksStarted

    monkeypatch.setattr(launch.subprocess, "Popen", start_ranks)
    config = TrainConfig(model=tiny_config(tiny_tokenizer), epochs=1, micro_batch_size=2, tokenizer_vocab_size=400)
    with pytest.raises(RanksStarted):
        launch.train(tiny_dialogues, tmp_path / "run", config)

    assert seen == {"extensions": str(lock.parent.parent), "lock_exists": False}
