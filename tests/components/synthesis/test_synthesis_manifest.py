"""read_manifest refuses broken manifests, naming the row and the column."""

import json

import pytest

from components.contracts import MANIFEST_COLUMNS, MANIFEST_FILE
from components.synthesis import ManifestError, read_manifest, write_manifest


def row(number: int, **changes) -> dict:
    good = {
        "id": f"{number:06d}",
        "split": "train",
        "domain": "travel",
        "speaker": "en-us+m3",
        "user_emotion": "angry",
        "user_text": "My flight got cancelled again!",
        "user_wav": f"wavs/{number:06d}_user.wav",
        "user_duration_s": 2.1,
        "user_channel": "",
        "response_emotion": "apologetic",
        "response_text": "I'm really sorry about that.",
        "response_wav": f"wavs/{number:06d}_response.wav",
        "response_duration_s": 3.4,
    }
    return {**good, **changes}


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "wavs").mkdir()
    for number in (1, 2, 3):
        for side in ("user", "response"):
            (tmp_path / "wavs" / f"{number:06d}_{side}.wav").write_bytes(b"RIFF")
    return tmp_path


def write_lines(dataset, rows):
    (dataset / MANIFEST_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_round_trip(dataset):
    rows = [row(1), row(2, split="test")]
    write_manifest(dataset, rows)
    assert read_manifest(dataset) == rows
    assert all(list(r) == list(MANIFEST_COLUMNS) for r in read_manifest(dataset))


def test_a_manifest_from_before_channels_reads_as_clean(dataset):
    channel = '[{"effect":"telephone"}]'
    write_lines(dataset, [{k: v for k, v in row(1).items() if k != "user_channel"}, row(2, user_channel=channel)])
    assert [r["user_channel"] for r in read_manifest(dataset)] == ["", channel]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row(2, user_emotion="joyful"), r"row 2 \(id='000002'\): column 'user_emotion' is 'joyful', not one of"),
        (row(2, split="dev"), r"row 2 .*column 'split' is 'dev'"),
        (row(2, response_duration_s=-1), r"row 2 .*column 'response_duration_s' must be a positive number"),
        (row(2, user_text=""), r"row 2 .*column 'user_text' must be a non-empty string"),
        (row(2, user_wav="/abs/000002_user.wav"), r"row 2 .*must be relative to the dataset directory"),
        (row(2, user_wav="../000002_user.wav"), r"row 2 .*must be relative to the dataset directory"),
        (row(2, user_wav="wavs/missing.wav"), r"row 2 .*points at .*missing.wav, which does not exist"),
        ({k: v for k, v in row(2).items() if k != "domain"}, r"row 2: .*missing \['domain'\]"),
        ({**row(2), "notes": "x"}, r"row 2: .*unexpected \['notes'\]"),
        (row(1), r"row 2: id '000001' repeats row 1"),
        (row(2, user_channel='[{"effect": "flanger"}]'), r"row 2 .*column 'user_channel' is .*flanger"),
        (row(2, user_channel=None), r"row 2 .*column 'user_channel' is None"),
    ],
)
def test_rejects_a_bad_row_naming_it(dataset, bad, message):
    write_lines(dataset, [row(1), bad, row(3)])
    with pytest.raises(ManifestError, match=message):
        read_manifest(dataset)


def test_rejects_invalid_json_naming_the_row(dataset):
    (dataset / MANIFEST_FILE).write_text(json.dumps(row(1)) + "\n{not json\n")
    with pytest.raises(ManifestError, match="row 2: not valid JSON"):
        read_manifest(dataset)


def test_rejects_a_missing_or_empty_manifest(dataset):
    with pytest.raises(ManifestError, match="no manifest.jsonl in .*synthesize_dataset"):
        read_manifest(dataset)
    (dataset / MANIFEST_FILE).write_text("")
    with pytest.raises(ManifestError, match="has no rows"):
        read_manifest(dataset)


def test_write_refuses_bad_rows(dataset):
    with pytest.raises(ManifestError, match="column 'domain' is 'space'"):
        write_manifest(dataset, [row(1, domain="space")])
    assert not (dataset / MANIFEST_FILE).exists()
