"""The unseen-voice split beside the in-distribution one: summary, gap, per-voice and per-channel accuracy, report."""

import json

import pytest

from components.contracts import (
    METRIC_UNSEEN_VOICE_NUM_SAMPLES,
    METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY,
    METRIC_UNSEEN_VOICE_USER_EMOTION_GAP,
    UNSEEN_VOICE_SPLIT,
)
from components.evaluation import PredictionRecord, compute_metrics, write_report
from components.evaluation.generalization import GENERALIZATION_TARGETS, generalization
from components.evaluation.targets import check_targets

NOISE = '[{"effect":"noise","snr_db":10.0,"color":"pink","seed":1}]'
NOISY_PHONE = '[{"effect":"noise","snr_db":10.0,"color":"pink","seed":2},{"effect":"telephone"}]'


def _case(split: str, speaker: str, channel: str, right: bool, i: int) -> tuple[PredictionRecord, dict]:
    record = PredictionRecord(
        id=f"{split}-{i}",
        user_emotion="sad",
        predicted_user_emotion="sad" if right else "happy",
        response_emotion="comforting",
        predicted_response_emotion="comforting",
        reference_text="I'm so sorry.",
        predicted_text="I'm so sorry.",
        latency_s=0.1,
    )
    return record, {"id": record.id, "split": split, "speaker": speaker, "user_channel": channel}


@pytest.fixture()
def cases():
    seen = [_case("test", "flite:kal", "", True, i) for i in range(3)]
    seen.append(_case("test", "espeak-ng:en-us+m3", NOISE, True, 3))
    unseen = [
        _case(UNSEEN_VOICE_SPLIT, "festival:kal_diphone", NOISY_PHONE, False, 0),
        _case(UNSEEN_VOICE_SPLIT, "festival:kal_diphone", "", True, 1),
        _case(UNSEEN_VOICE_SPLIT, "flite:slt", "", True, 2),
        _case(UNSEEN_VOICE_SPLIT, "flite:slt", NOISE, True, 3),
    ]
    return seen, unseen


def test_summary_gap_and_groups(cases):
    seen, unseen = cases
    result = generalization(
        compute_metrics([r for r, _ in seen]),
        compute_metrics([r for r, _ in unseen]),
        [r for r, _ in seen + unseen],
        [row for _, row in seen + unseen],
    )
    summary = result.summary()
    assert summary[METRIC_UNSEEN_VOICE_NUM_SAMPLES] == 4
    assert summary[METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY] == 0.75
    assert summary[METRIC_UNSEEN_VOICE_USER_EMOTION_GAP] == pytest.approx(0.25)  # 1.0 in distribution
    voices = {(g.group, g.split): (g.n, g.correct) for g in result.by_voice}
    assert voices[("festival:kal_diphone", UNSEEN_VOICE_SPLIT)] == (2, 1) and voices[("flite:kal", "test")] == (3, 3)
    channels = {(g.group, g.split): (g.n, g.correct) for g in result.by_channel}
    # The noisy phone turn counts under noise and under telephone; clean turns under "clean".
    assert channels[("noise", UNSEEN_VOICE_SPLIT)] == (2, 1) and channels[("telephone", UNSEEN_VOICE_SPLIT)] == (1, 0)
    assert channels[("clean", "test")] == (3, 3)
    [target] = check_targets(summary, GENERALIZATION_TARGETS)
    assert target.status == "missed" and "0.75" in target.line()


def test_report_shows_both_splits_side_by_side(cases, tmp_path):
    seen, unseen = cases
    seen_result = compute_metrics([r for r, _ in seen])
    result = generalization(
        seen_result,
        compute_metrics([r for r, _ in unseen]),
        [r for r, _ in seen + unseen],
        [row for _, row in seen + unseen],
    )
    paths = write_report(seen_result, tmp_path, generalization=result)
    assert len(paths.generalization_files) == 3
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths.generalization_files)
    document = json.loads(paths.metrics_json.read_text())
    assert document["summary"][METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY] == 0.75
    assert document["generalization"]["by_voice"][0]["group"] == "espeak-ng:en-us+m3"
    markdown = paths.markdown.read_text()
    assert "| user_emotion_accuracy | 1 | 0.75 | +0.25 |" in markdown
    assert "| festival:kal_diphone | test_unseen_voice | 2 | 0.500 |" in markdown
    assert paths.html.read_text().count("src='data:image/png;base64,") == 6
