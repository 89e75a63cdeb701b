"""Speak dialogue plans in shards on a process pool, so a build can stop anywhere and resume where it stopped.

A work directory holds the build while it runs:

    wavs/<id>_user.wav, wavs/<id>_response.wav   written by the speak function
    shards/fingerprint.json                       the settings the build was started with (prepare_work_dir)
    shards/shard-00000.jsonl                      a shard's rows, one JSON object a line

A shard is finished exactly when its rows file exists: the file is written (temp file, fsync, os.replace) only
after every wav of the shard is on disk and fsync'd, so it is the completion marker. A resumed run keeps finished
shards whose wavs are all there and redoes every other shard from scratch. Each dialogue's audio depends only on
the seed and its plan, so redoing a shard rewrites the same bytes: resuming cannot duplicate, drop or change a row.
One run at a time holds a work directory (`locked`); a second is refused rather than interleaved.

    shards = make_shards(plans, shard_size=50)
    run = run_shards(functools.partial(speak, voices, config=config), shards, work_dir, workers=4)
    run.rows  # every row in plan order, whichever process made it and whichever run
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from components.atomic import fsync_path, write_atomic
from components.contracts import MANIFEST_COLUMNS
from components.errors import OmniError, OutputExistsError
from components.synthesis.plan import DialoguePlan

# Bump when the meaning of the files above changes: a work directory of another layout is then refused, not mixed.
SHARD_LAYOUT_VERSION = 1
SHARD_DIR = "shards"
FINGERPRINT_FILE = "fingerprint.json"
WAV_COLUMNS = tuple(column for column in MANIFEST_COLUMNS if column.endswith("_wav"))

# speak(plan, work_dir) -> row: writes the plan's wavs under work_dir; must pickle (a module-level function,
# or a functools.partial of one), since it runs in worker processes.
SpeakFn = Callable[[DialoguePlan, Path], dict]


class SynthesisError(OmniError, RuntimeError):
    """A build stopped part way; its finished shards are kept and the message says how to resume."""


@dataclass(frozen=True)
class Shard:
    name: str  # "shard-00000"; its rows file is shards/<name>.jsonl
    plans: tuple[DialoguePlan, ...]


@dataclass
class ShardRun:
    rows: list[dict]  # every shard's rows, in plan order
    shards: int
    resumed_shards: int  # finished by an earlier run (here or elsewhere) and not synthesized again


def make_shards(plans: list[DialoguePlan], shard_size: int) -> list[Shard]:
    """Consecutive runs of `shard_size` plans (the last may be shorter)."""
    return [
        Shard(f"shard-{start // shard_size:05d}", tuple(plans[start : start + shard_size]))
        for start in range(0, len(plans), shard_size)
    ]


def prepare_work_dir(root: Path, fingerprint: dict, resume: bool = True) -> None:
    """Make `root` a work directory for a build with `fingerprint` (JSON-able settings), keeping a previous build
    of the same settings when `resume`. A directory holding another build, or files that are not a build, is
    refused rather than deleted: it may be hours of work, or not ours at all."""
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples become lists, as they come back from the file
    path = root / SHARD_DIR / FINGERPRINT_FILE
    if path.is_file():
        if not resume:  # ours (it has a fingerprint), and the caller asked to start over; root itself stays locked
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            previous = json.loads(path.read_text(encoding="utf-8"))
            if previous != fingerprint:
                raise OutputExistsError(
                    f"{root} holds a partial build with other settings ({describe_difference(previous, fingerprint)}); "
                    "rerun with the original settings to finish it, or delete it (or pass resume=False) to start over"
                )
            return
    elif root.is_dir() and any(root.iterdir()):
        raise OutputExistsError(
            f"{root} holds files but no {SHARD_DIR}/{FINGERPRINT_FILE}, so it is not a partial "
            "synthesis build; delete it or pick another work directory"
        )
    write_atomic(path, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the work directory `root` (made if absent) for this process: a second run of the same build while
    this one runs is refused, rather than writing into it and publishing it from under this one."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel if this process dies
    except BlockingIOError:
        os.close(descriptor)
        raise OutputExistsError(
            f"another synthesis run is building {root} right now; wait for it to finish, or "
            "stop it and run the same command again to resume"
        ) from None
    try:
        yield
    finally:
        os.close(descriptor)


def describe_difference(previous: dict, current: dict) -> str:
    """The settings that differ, e.g. "config.seed: 7 there, 8 now"."""

    def flat(value, key=""):
        if not isinstance(value, dict):
            return {key: value}
        return {k: v for name, item in value.items() for k, v in flat(item, f"{key}.{name}".lstrip(".")).items()}

    old, new = flat(previous), flat(current)
    changed = [
        f"{key}: {old.get(key, 'unset')!r} there, {new.get(key, 'unset')!r} now"
        for key in sorted(set(old) | set(new))
        if old.get(key, "unset") != new.get(key, "unset")
    ]
    return "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")


def finished_rows(root: Path, shard: Shard, check_wavs: bool = True) -> list[dict] | None:
    """The rows of `shard` if a run finished it in `root` (rows file present, its ids the shard's, every wav
    there unless not `check_wavs`), else None."""
    path = root / SHARD_DIR / f"{shard.name}.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (FileNotFoundError, ValueError):
        return None
    if [row.get("id") for row in rows] != [plan.id for plan in shard.plans]:
        return None
    if check_wavs and not all((root / row[column]).is_file() for row in rows for column in WAV_COLUMNS):
        return None
    return rows


def run_shards(
    speak: SpeakFn,
    shards: list[Shard],
    root: Path,
    *,
    workers: int,
    progress: bool = True,
    elsewhere: Mapping[str, list[dict]] | None = None,
    on_finished: Callable[[Shard, list[dict]], None] | None = None,
) -> ShardRun:
    """Run every shard not finished yet on `workers` processes, and return all rows in plan order.

    `elsewhere`: rows of shards a run finished somewhere else (an S3 prefix), whose wavs are not in `root`.
    `on_finished(shard, rows)` runs in this process after each shard this call finishes, in completion order.
    A failing shard stops the run once the shards already running have finished (and kept their rows).
    """
    (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (root / SHARD_DIR).glob(".*.tmp"):  # a run killed mid-write leaves these
        stale.unlink()
    done: dict[str, list[dict]] = {}
    for shard in shards:
        rows = finished_rows(root, shard)
        if rows is None:
            # A rows file that does not vouch for its shard (wavs gone) would be counted as finished: drop it.
            (root / SHARD_DIR / f"{shard.name}.jsonl").unlink(missing_ok=True)
            rows = _matching((elsewhere or {}).get(shard.name), shard)
        if rows is not None:
            done[shard.name] = rows
    resumed, total = len(done), len(shards)
    todo = iter([shard for shard in shards if shard.name not in done])
    # At most `workers` shards are submitted at a time, so a failure stops the build once the running shards
    # finish: shards already in the pool's call queue could not be cancelled.
    with _pool(max(1, min(workers, total - resumed))) as pool:
        running = {}

        def submit_next() -> None:
            shard = next(todo, None)
            if shard is not None:
                running[pool.submit(_run_shard, speak, shard, root)] = shard

        for _ in range(workers):
            submit_next()  # forks the workers now, before tqdm starts its monitor thread
        with tqdm(
            total=sum(len(s.plans) for s in shards),
            initial=sum(len(rows) for rows in done.values()),
            desc="synthesizing speech",
            unit="dialogue",
            disable=not progress,
            mininterval=2.0,
        ) as bar:
            bar.set_postfix_str(f"shards {len(done)}/{total}")
            try:
                while running:
                    for future in wait(running, return_when=FIRST_COMPLETED).done:
                        shard = running.pop(future)
                        done[shard.name] = future.result()
                        submit_next()  # before on_finished, so a worker does not idle through an upload
                        if on_finished is not None:
                            on_finished(shard, done[shard.name])
                        bar.set_postfix_str(f"shards {len(done)}/{total}", refresh=False)
                        bar.update(len(shard.plans))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # the running shards finish and keep their rows
                raise
    return ShardRun(rows=[row for shard in shards for row in done[shard.name]], shards=total, resumed_shards=resumed)


def stopped(error: BaseException, finished: int, total: int, kept: str, disk: Path) -> BaseException:
    """The error to raise when a build stops on `error` with `finished` of `total` shards kept in `kept` (the work
    directory `disk`, and where else): it says how to resume, and for a full disk how to make room. Ctrl-C stays
    a KeyboardInterrupt."""
    state = f"{finished} of {total} shards are finished and kept in {kept}"
    resume = "run the same command again to resume; it redoes only the unfinished shards"
    if isinstance(error, KeyboardInterrupt):
        return KeyboardInterrupt(f"synthesis interrupted; {state}: {resume}")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return SynthesisError(
            f"synthesis stopped: no space left on the disk ({error}); {state}. Free space on "
            f"the disk holding {disk} (`df -h {disk.parent}` shows how much is left), then {resume}"
        )
    return SynthesisError(f"synthesis stopped: {type(error).__name__}: {error}; {state}: {resume}")


def finished_names(root: Path) -> set[str]:
    """Names of the shards with a rows file in `root`."""
    return {path.stem for path in (root / SHARD_DIR).glob("shard-*.jsonl")}


def _run_shard(speak: SpeakFn, shard: Shard, root: Path) -> list[dict]:
    """In a worker process: speak every plan of the shard, make its wavs durable, then write its rows file."""
    rows = [speak(plan, root) for plan in shard.plans]
    wavs = sorted({root / row[column] for row in rows for column in WAV_COLUMNS})
    for path in wavs + sorted({path.parent for path in wavs}):  # the files, then their directory entries
        fsync_path(path)
    write_atomic(
        root / SHARD_DIR / f"{shard.name}.jsonl", "".join(json.dumps(row, ensure_ascii=True) + "\n" for row in rows)
    )
    return rows


def _matching(rows: list[dict] | None, shard: Shard) -> list[dict] | None:
    return rows if rows is not None and [row.get("id") for row in rows] == [p.id for p in shard.plans] else None


def _pool(workers: int) -> ProcessPoolExecutor:
    # Processes, not threads: a dialogue is subprocess chains plus numpy work on the GIL. fork starts a worker in
    # milliseconds and keeps the parent's state; macOS and Windows lack a safe fork, so they spawn.
    method = "fork" if sys.platform == "linux" else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
