"""The dataset manifest: MANIFEST_FILE in a dataset directory, one JSON object per line, MANIFEST_COLUMNS exactly.

Every stage that reads a dataset goes through `read_manifest`, so a hand-edited or half-written
manifest fails here, naming the row and column, instead of deep inside training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

from components.audio.channels import ChannelError, channel_from_json
from components.contracts import DOMAINS, MANIFEST_COLUMNS, MANIFEST_FILE, RESPONSE_EMOTIONS, SPLITS, USER_EMOTIONS
from components.errors import OmniError

# Columns whose value must be one of a fixed label set.
_LABELS: dict[str, tuple[str, ...]] = {
    "split": SPLITS,
    "domain": DOMAINS,
    "user_emotion": USER_EMOTIONS,
    "response_emotion": RESPONSE_EMOTIONS,
}
_TEXTS = ("id", "speaker", "user_text", "response_text")
_WAVS = ("user_wav", "response_wav")
_DURATIONS = ("user_duration_s", "response_duration_s")
_ADDED_LATER = {"user_channel": ""}  # columns a manifest from before them lacks, and what that means (clean)


class ManifestError(OmniError, ValueError):
    """A manifest that breaks the schema; the message names the file, row and column."""


def write_manifest(dataset_dir: str | Path, rows: list[dict]) -> Path:
    """Write rows (dicts with MANIFEST_COLUMNS) as MANIFEST_FILE in `dataset_dir`, columns in contract order."""
    path = Path(dataset_dir) / MANIFEST_FILE
    for number, row in enumerate(rows, start=1):
        _check_row(row, number, path, Path(dataset_dir), check_files=False)
    with path.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps({column: row[column] for column in MANIFEST_COLUMNS}, ensure_ascii=True) + "\n")
    return path


def read_manifest(dataset_dir: str | Path, *, check_files: bool = True) -> list[dict]:
    """Read and validate MANIFEST_FILE in `dataset_dir`; returns one dict per row, columns in contract order.

    Wav paths stay relative to `dataset_dir` as stored. With `check_files`, every referenced wav must exist.
    Raises ManifestError naming the row (1-based line number and id) and column of the first problem.
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST_FILE} in {dataset_dir}; point at a dataset directory made by synthesize_dataset"
        )
    rows, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path} row {number}: not valid JSON ({err.msg}); fix or regenerate the row") from None
        if isinstance(row, dict):
            row = {**_ADDED_LATER, **row}
        _check_row(row, number, path, dataset_dir, check_files)
        if row["id"] in seen:
            raise ManifestError(
                f"{path} row {number}: id {row['id']!r} repeats row {seen[row['id']]}; ids must be unique"
            )
        seen[row["id"]] = number
        rows.append({column: row[column] for column in MANIFEST_COLUMNS})
    if not rows:
        raise ManifestError(f"{path} has no rows; regenerate the dataset")
    return rows


def _check_row(row: object, number: int, path: Path, dataset_dir: Path, check_files: bool) -> None:
    where = f"{path} row {number}"
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [column for column in MANIFEST_COLUMNS if column not in row]
    extra = [column for column in row if column not in MANIFEST_COLUMNS]
    if missing or extra:
        raise ManifestError(f"{where}: columns must be exactly MANIFEST_COLUMNS; missing {missing}, unexpected {extra}")
    where = f"{where} (id={row['id']!r})"
    for column in _TEXTS + _WAVS:
        if not isinstance(row[column], str) or not row[column].strip():
            raise ManifestError(f"{where}: column {column!r} must be a non-empty string, got {row[column]!r}")
    for column, allowed in _LABELS.items():
        if row[column] not in allowed:
            raise ManifestError(f"{where}: column {column!r} is {row[column]!r}, not one of {allowed}")
    for column in _DURATIONS:
        value = row[column]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ManifestError(f"{where}: column {column!r} must be a positive number of seconds, got {value!r}")
    try:
        if not isinstance(row["user_channel"], str):
            raise ChannelError("not a string")
        channel_from_json(row["user_channel"])
    except (ChannelError, json.JSONDecodeError):
        raise ManifestError(
            f"{where}: column 'user_channel' is {row['user_channel']!r}; expected \"\" (clean) or "
            "the JSON list of channel effects synthesis recorded"
        ) from None
    for column in _WAVS:
        relative = PurePosixPath(row[column])
        if relative.is_absolute() or ".." in relative.parts:
            raise ManifestError(
                f"{where}: column {column!r} is {row[column]!r}; wav paths must be relative to the dataset "
                "directory (e.g. wavs/000001_user.wav) so the dataset can move"
            )
        if check_files and not (dataset_dir / relative).is_file():
            raise ManifestError(f"{where}: column {column!r} points at {dataset_dir / relative}, which does not exist")
