"""write_report: every file is written, the HTML stands alone, model text cannot break the tables."""

import json

from components.contracts import REPORT_HTML_FILE, REPORT_MARKDOWN_FILE, REPORT_METRICS_FILE
from components.evaluation import PredictionRecord, compute_metrics, write_report

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records():
    emotions = [("neutral", "neutral"), ("happy", "cheerful"), ("sad", "comforting"), ("angry", "apologetic")]
    return [
        PredictionRecord(
            id=f"{i:06d}",
            user_emotion=user,
            predicted_user_emotion=user if i % 3 else "sad",
            response_emotion=reply,
            predicted_response_emotion=reply,
            reference_text="I'm sorry | that sounds hard.",
            predicted_text="<b>sorry</b> | hard",
            latency_s=0.2 + 0.01 * i,
        )
        for i, (user, reply) in enumerate(emotions * 5)
    ]


def test_report_writes_every_file_and_embeds_images(tmp_path):
    records = _records()
    result = compute_metrics(records)

    paths = write_report(result, tmp_path / "report", samples=records, title="Nightly eval", max_samples=3)

    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.files())
    assert {p.name for p in paths.files()} >= {REPORT_METRICS_FILE, REPORT_MARKDOWN_FILE, REPORT_HTML_FILE}
    for png in (paths.user_confusion_png, paths.response_confusion_png, paths.latency_png):
        assert png.read_bytes().startswith(_PNG_MAGIC)

    document = json.loads(paths.metrics_json.read_text())
    assert document["summary"] == result.summary()
    assert document["detail"]["user_emotion_confusion"] == result.user_emotion_confusion

    html = paths.html.read_text()
    assert html.count("src='data:image/png;base64,iVBORw0KGgo") == 3  # base64 of the PNG magic
    assert ".png" not in html  # nothing refers to a file next to it
    assert "&lt;b&gt;sorry&lt;/b&gt;" in html and "<b>sorry" not in html

    markdown = paths.markdown.read_text()
    assert "# Nightly eval" in markdown
    assert f"]({paths.user_confusion_png.name})" in markdown
    assert "I'm sorry \\| that sounds hard." in markdown
    assert markdown.count("| 00000") == 3  # max_samples rows
