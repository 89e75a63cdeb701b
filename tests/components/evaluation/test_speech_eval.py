"""evaluate_speech on a tiny (untrained) speaking model: every metric is either a real value or listed as not
computed with its reason; the figures and WAVs are written; a text-only model is refused nothing, it is told why."""

from __future__ import annotations

import json

import pytest

from components.contracts import (
    METRIC_PITCH_ORDER_SPEARMAN,
    METRIC_RESYNTHESIS_STOI,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_SPEECH_JUDGE_ACCURACY,
    METRIC_SPEECH_SILENT_FRACTION,
    SPEECH_METRICS_FILE,
)
from components.evaluation.speech_eval import (
    CONTRAST_PNG,
    PROSODY_PNG,
    SPEECH_TARGETS,
    SpeechEvalConfig,
    evaluate_speech,
)
from components.inference import EmotionOmniResponder
from components.synthesis import read_manifest

SMALL = SpeechEvalConfig(judge_texts=4, compare_clips=2, dnsmos_clips=2, batch_size=4)


@pytest.fixture(scope="module")
def split(tiny_dialogues):
    rows = read_manifest(tiny_dialogues)
    return [r for r in rows if r["split"] == "test"], [r["response_text"] for r in rows if r["split"] == "train"]


def test_speaking_model(tiny_model_dir, tiny_dialogues, split, tmp_path):
    rows, train_texts = split
    result = evaluate_speech(
        EmotionOmniResponder.from_pretrained(tiny_model_dir), rows, tiny_dialogues, tmp_path, train_texts, SMALL
    )
    for name in (METRIC_SPEECH_SILENT_FRACTION, METRIC_SPEECH_JUDGE_ACCURACY, METRIC_RESYNTHESIS_STOI):
        assert name in result.summary, name
    # Each target's metric has a value or a reason, never both and never neither.
    for name in SPEECH_TARGETS:
        assert (name in result.summary) != (name in result.not_computed), name
    assert 0 <= result.summary[METRIC_RESYNTHESIS_STOI] <= 1 and result.judge.n == len(rows)
    assert {t.metric for t in result.targets} == set(SPEECH_TARGETS)
    assert (tmp_path / PROSODY_PNG).stat().st_size > 10_000
    saved = json.loads((tmp_path / SPEECH_METRICS_FILE).read_text())
    assert saved["summary"] == pytest.approx(result.summary)
    assert {p.name for p in result.files} >= {PROSODY_PNG, "contrast_comforting.wav", "contrast_excited.wav"}
    if (tmp_path / CONTRAST_PNG).exists():
        assert (tmp_path / CONTRAST_PNG).stat().st_size > 10_000


def test_text_only_model_reports_why_nothing_was_measured(tiny_text_model_dir, tiny_dialogues, split, tmp_path):
    rows, train_texts = split
    result = evaluate_speech(
        EmotionOmniResponder.from_pretrained(tiny_text_model_dir), rows, tiny_dialogues, tmp_path, train_texts, SMALL
    )
    assert result.summary == {}
    assert "no talker" in result.not_computed[METRIC_SPEECH_EMOTION_AGREEMENT]
    assert METRIC_PITCH_ORDER_SPEARMAN in result.not_computed
