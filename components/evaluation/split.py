"""The identity of an evaluation split: two evaluations compare only when they scored the same turns.

The gate compares a challenger with the serving champion metric by metric, which means something only on the
same held-out turns. The fingerprint covers what a score depends on: each evaluated row's labels and texts and the
bytes of the audio the model hears, so a resynthesized dataset with the same seed matches and any change does not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# The manifest columns that decide a row's score (ids alone would match a dataset re-spoken with other voices).
_SCORED_COLUMNS = ("id", "split", "user_emotion", "user_text", "response_emotion", "response_text")


def split_fingerprint(rows: list[dict], dataset_dir: Path) -> str:
    """A short SHA-256 over `rows` (manifest rows, in order) and their user audio."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row[c] for c in _SCORED_COLUMNS]).encode())
        digest.update(hashlib.sha256((Path(dataset_dir) / row["user_wav"]).read_bytes()).digest())
    return digest.hexdigest()[:16]
