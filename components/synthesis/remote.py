"""Synthesis to an S3 prefix: the build runs in a local work directory and is mirrored to `<uri>/.partial/`
shard by shard, so a run on another machine can resume it.

While the dataset is built, `<uri>/.partial/` holds the work directory's layout (shards.py):

    .partial/shards/fingerprint.json     uploaded before any shard; a resumed run must match it
    .partial/wavs/<id>_*.wav             each finished shard's audio, uploaded when the shard finishes
    .partial/shards/shard-00000.jsonl    then the shard's rows: present only once its wavs are all there

At the end the dataset goes to `<uri>/` (wavs, DATASET_STATS_FILE, DATASET_CARD_FILE, then MANIFEST_FILE last, so
the manifest vouches for the rest) and `.partial/` is deleted. Shards finished only remotely keep their wavs
there until that final upload, which downloads them first. With `overwrite`, a previous dataset at the prefix is
deleted (manifest first) before the build starts: an object store cannot swap a prefix in one step. Credentials
and the endpoint come from the environment as in components/storage/s3.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from components.contracts import DATASET_CARD_FILE, DATASET_STATS_FILE, MANIFEST_FILE
from components.errors import OutputExistsError
from components.storage.s3 import (
    ENDPOINT_ENV,
    StorageError,
    delete_prefix,
    download_directory,
    list_objects,
    parse_s3_uri,
    upload_directory,
)
from components.synthesis.shards import (
    FINGERPRINT_FILE,
    SHARD_DIR,
    WAV_COLUMNS,
    Shard,
    describe_difference,
    finished_rows,
)

PARTIAL = ".partial"
_SCRATCH = ".upload"  # inside the work directory: hard links to the files of one upload


def is_s3_uri(target: object) -> bool:
    return isinstance(target, str) and target.startswith("s3://")


class S3Output:
    """One build's S3 prefix. Made before anything is synthesized: it checks the endpoint, the credentials, the
    bucket and what the prefix holds, so a bad target fails in seconds, not after hours of synthesis."""

    def __init__(self, uri: str, overwrite: bool):
        self.location = parse_s3_uri(uri)
        self.uri = self.location.uri
        self.partial = self.location.child(PARTIAL).uri
        try:
            names = list_objects(self.uri)
        except StorageError as error:
            raise _unusable(str(error)) from None
        self._partial_names = {name[len(PARTIAL) + 1 :] for name in names if name.startswith(f"{PARTIAL}/")}
        dataset = [name for name in names if not name.startswith(f"{PARTIAL}/")]
        self._replace_old = MANIFEST_FILE in dataset
        if self._replace_old and not overwrite:
            raise OutputExistsError(
                f"{self.uri} already holds a dataset ({MANIFEST_FILE}); pass a new prefix, or "
                "overwrite=True (--overwrite) to replace it"
            )
        if dataset and not self._replace_old and not self._partial_names:
            raise OutputExistsError(
                f"{self.uri} holds {len(dataset)} objects but no {MANIFEST_FILE}, so it is not a "
                "previous dataset; pick another prefix or delete them yourself"
            )

    def prepare(self, work: Path, shards: list[Shard], fingerprint: dict, resume: bool) -> dict[str, list[dict]]:
        """Line `<uri>/.partial/` up with the local work directory `work` (already prepared for `fingerprint`);
        returns the rows of the shards finished only remotely. Refuses a remote build with other settings."""
        fingerprint = json.loads(json.dumps(fingerprint))
        remote: dict[str, list[dict]] = {}
        if self._partial_names and not resume:
            delete_prefix(self.partial)
        elif f"{SHARD_DIR}/{FINGERPRINT_FILE}" in self._partial_names:
            fetched = work / ".remote"
            shutil.rmtree(fetched, ignore_errors=True)
            download_directory(self.location.child(PARTIAL, SHARD_DIR).uri, fetched / SHARD_DIR)
            previous = json.loads((fetched / SHARD_DIR / FINGERPRINT_FILE).read_text(encoding="utf-8"))
            if previous != fingerprint:
                raise OutputExistsError(
                    f"{self.partial} holds a partial build with other settings "
                    f"({describe_difference(previous, fingerprint)}); rerun with the original settings to finish "
                    f"it, or delete that prefix (or pass resume=False) to start over"
                )
            for shard in shards:
                rows = finished_rows(fetched, shard, check_wavs=False)  # its wavs are remote
                if rows is not None:
                    remote[shard.name] = rows
            shutil.rmtree(fetched)
        if self._replace_old:
            # An object store cannot swap a prefix in one step, so the old dataset goes before the build starts,
            # manifest first so no reader sees it half deleted. From here a rerun resumes like any other.
            delete_prefix(self.uri, first=(MANIFEST_FILE,))
            self._replace_old, remote = False, {}
        if not remote:
            self._upload(work, [f"{SHARD_DIR}/{FINGERPRINT_FILE}"], self.partial)
        for shard in shards:  # finished here but not uploaded: the run stopped between the two
            rows = finished_rows(work, shard)
            if shard.name not in remote and rows is not None:
                self.upload_shard(work, shard, rows)
        return remote

    def upload_shard(self, work: Path, shard: Shard, rows: list[dict]) -> None:
        """Upload a finished shard to `.partial/`: its wavs, then its rows file (the remote completion marker)."""
        wavs = [row[column] for row in rows for column in WAV_COLUMNS]
        self._upload(work, [*wavs, f"{SHARD_DIR}/{shard.name}.jsonl"], self.partial, last=f"{shard.name}.jsonl")

    def fetch_wavs(self, work: Path) -> None:
        """Download the wavs of shards an earlier machine finished: the filters and the card read every turn."""
        download_directory(self.location.child(PARTIAL, "wavs").uri, work / "wavs")

    def publish(self, work: Path, files: list[str]) -> None:
        """Upload the finished dataset in `work` (`files`, the stats, the card, then MANIFEST_FILE last) to the
        prefix, then delete `.partial/`."""
        self._upload(work, [*files, DATASET_STATS_FILE, DATASET_CARD_FILE, MANIFEST_FILE], self.uri, last=MANIFEST_FILE)
        delete_prefix(self.partial)

    def _upload(self, work: Path, files: list[str], uri: str, last: str = "") -> None:
        # upload_directory sends a whole folder; a folder of hard links to just these files costs no copy.
        scratch = work / _SCRATCH
        shutil.rmtree(scratch, ignore_errors=True)
        for name in files:
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(work / name, scratch / name)
            except OSError:  # a filesystem without hard links
                shutil.copyfile(work / name, scratch / name)
        try:
            upload_directory(scratch, uri, last=(last,) if last else ())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _unusable(problem: str) -> StorageError:
    return StorageError(
        f"{problem}; the endpoint comes from the URI, or from {' / '.join(ENDPOINT_ENV)} for "
        "s3://bucket/prefix, the credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
        "nothing was synthesized"
    )
