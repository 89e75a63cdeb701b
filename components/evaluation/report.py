"""write_report: an EvalResult as metrics.json, report.md, a self-contained report.html and the PNGs.

    paths = write_report(result, Path("out/eval"), samples=records[:8])
    paths.files()   # everything written, e.g. to log as MLflow artifacts

metrics.json is for machines ({"summary": EvalResult.summary(), "detail": EvalResult.to_dict()}); the
Markdown links its PNGs by relative path and suits a repository or a KFP Markdown visualisation; the HTML
embeds them as base64 data URIs so it stays readable when copied away from its directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from components.contracts import (
    EMPATHY_JUDGE_FILE,
    METRIC_CHRF,
    METRIC_DNSMOS_BAK,
    METRIC_DNSMOS_OVRL,
    METRIC_DNSMOS_SIG,
    METRIC_EMPATHY_SCORE,
    METRIC_LATENCY_MEAN_MS,
    METRIC_LATENCY_P50_MS,
    METRIC_LATENCY_P95_MS,
    METRIC_MCD_DB,
    METRIC_NUM_SAMPLES,
    METRIC_PITCH_ORDER_SPEARMAN,
    METRIC_RELEVANCE_REFERENCE,
    METRIC_RELEVANCE_USER,
    METRIC_RESPONSE_EMOTION_ACCURACY,
    METRIC_RESYNTHESIS_MCD_DB,
    METRIC_RESYNTHESIS_STOI,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_SPEECH_EMOTION_REFERENCE,
    METRIC_SPEECH_JUDGE_ACCURACY,
    METRIC_SPEECH_RTF,
    METRIC_SPEECH_SILENT_FRACTION,
    METRIC_USER_EMOTION_ACCURACY,
    METRIC_USER_EMOTION_MACRO_F1,
    METRIC_UTMOS,
    RELEVANCE_FILE,
    REPORT_HTML_FILE,
    REPORT_MARKDOWN_FILE,
    REPORT_METRICS_FILE,
    SPEECH_JUDGE_FILE,
    SPEECH_METRICS_FILE,
    UNSEEN_VOICE_SPLIT,
)
from components.evaluation.empathy_judge import JudgeResult
from components.evaluation.generalization import UNSEEN_VOICE_METRICS, GeneralizationResult
from components.evaluation.metrics import EvalResult
from components.evaluation.plots import plot_confusion_matrix, plot_group_accuracy, plot_latency_histogram
from components.evaluation.records import PredictionRecord
from components.evaluation.relevance import RelevanceResult
from components.evaluation.report_render import Section, render_html, render_markdown
from components.evaluation.speech_eval import CONTRAST_PNG, PROSODY_PNG, SpeechEvalResult

USER_CONFUSION_PNG = "user_emotion_confusion.png"
RESPONSE_CONFUSION_PNG = "response_emotion_confusion.png"
LATENCY_PNG = "latency_histogram.png"
UNSEEN_CONFUSION_PNG = "unseen_voice_user_emotion_confusion.png"
VOICE_ACCURACY_PNG = "user_emotion_by_voice.png"
CHANNEL_ACCURACY_PNG = "user_emotion_by_channel.png"
_SPLIT_COLOURS = {"test": "#4a7ab5", UNSEEN_VOICE_SPLIT: "#d08c2a"}

# One line per summary metric, so a reader of the report need not know the code.
_METRIC_NOTES = {
    METRIC_NUM_SAMPLES: "test utterances scored",
    METRIC_USER_EMOTION_ACCURACY: "fraction of utterances whose user emotion was recognised",
    METRIC_USER_EMOTION_MACRO_F1: "mean F1 over the user emotions present in the test split",
    METRIC_RESPONSE_EMOTION_ACCURACY: "fraction of replies whose emotion matched the reference",
    METRIC_CHRF: "character n-gram F-score of reply text vs reference, 0-100",
    METRIC_RELEVANCE_USER: "cosine of sentence embeddings (all-MiniLM-L6-v2), reply vs the user's words, -1-1",
    METRIC_RELEVANCE_REFERENCE: "cosine of sentence embeddings, reply vs the reference reply, -1-1",
    METRIC_EMPATHY_SCORE: "an LLM judge's 1-5 empathy score on a written rubric (after Emotion GPT Score)",
    METRIC_LATENCY_P50_MS: "median audio-in to reply-out time",
    METRIC_LATENCY_P95_MS: "95th-percentile audio-in to reply-out time",
    METRIC_LATENCY_MEAN_MS: "mean audio-in to reply-out time",
    METRIC_SPEECH_EMOTION_AGREEMENT: "replies whose voice a speech-emotion judge hears as the emotion the model chose",
    METRIC_SPEECH_EMOTION_REFERENCE: "replies whose voice the judge hears as the reference reply's emotion",
    METRIC_SPEECH_JUDGE_ACCURACY: "the judge itself on the reference reply audio (its ceiling; chance 1/7)",
    METRIC_RESYNTHESIS_STOI: "reference units -> token2wav vs the reference audio: intelligibility kept, 0-1",
    METRIC_RESYNTHESIS_MCD_DB: "mel-cepstral distortion of that resynthesis, dB (lower is closer)",
    METRIC_MCD_DB: "the talker speaking the reference text vs the reference audio, DTW-aligned, dB",
    METRIC_PITCH_ORDER_SPEARMAN: "rank correlation of per-emotion median pitch, generated vs reference",
    METRIC_DNSMOS_OVRL: "DNSMOS overall quality, 1-5 (a stand-in for UTMOS; a sample of replies)",
    METRIC_DNSMOS_SIG: "DNSMOS speech signal quality, 1-5",
    METRIC_DNSMOS_BAK: "DNSMOS background quality, 1-5",
    METRIC_UTMOS: "UTMOS naturalness, 1-5, the paper's speech MOS (a local checkpoint; the DNSMOS sample)",
    METRIC_SPEECH_RTF: "talker + vocoder seconds per second of reply audio (below 1: faster than real time)",
    METRIC_SPEECH_SILENT_FRACTION: "replies that got no audio (nothing speakable, or no units)",
}


@dataclass
class ReportPaths:
    directory: Path
    metrics_json: Path
    markdown: Path
    html: Path
    user_confusion_png: Path
    response_confusion_png: Path
    latency_png: Path
    speech_files: list[Path] = field(default_factory=list)  # the speech section's plots, WAVs and detail
    generalization_files: list[Path] = field(default_factory=list)  # the unseen-voice section's plots
    reply_files: list[Path] = field(default_factory=list)  # relevance and empathy-judge detail (JSON)

    def files(self) -> list[Path]:
        """Every file the report wrote."""
        return [
            self.metrics_json,
            self.markdown,
            self.html,
            self.user_confusion_png,
            self.response_confusion_png,
            self.latency_png,
            *self.speech_files,
            *self.generalization_files,
            *self.reply_files,
        ]


def write_report(
    result: EvalResult,
    out_dir: Path,
    *,
    samples: list[PredictionRecord] | None = None,
    title: str = "Emotion Omni evaluation",
    max_samples: int = 8,  # sample rows shown; enough to eyeball reply quality without burying the metrics
    speech: SpeechEvalResult | None = None,
    generalization: GeneralizationResult | None = None,
    relevance: RelevanceResult | None = None,
    judge: JudgeResult | None = None,
    split: dict | None = None,  # {"name", "rows", "fingerprint"}: which turns were scored (evaluation.split)
    not_computed: dict[str, str] | None = None,  # metric -> why it has no value, beyond the speech section's
) -> ReportPaths:
    """Write the report files into `out_dir` (created if missing) and return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        directory=out_dir,
        metrics_json=out_dir / REPORT_METRICS_FILE,
        markdown=out_dir / REPORT_MARKDOWN_FILE,
        html=out_dir / REPORT_HTML_FILE,
        user_confusion_png=out_dir / USER_CONFUSION_PNG,
        response_confusion_png=out_dir / RESPONSE_CONFUSION_PNG,
        latency_png=out_dir / LATENCY_PNG,
    )
    plot_confusion_matrix(
        result.user_emotion_confusion,
        result.user_emotion_labels,
        paths.user_confusion_png,
        title="User emotion recognition",
    )
    plot_confusion_matrix(
        result.response_emotion_confusion,
        result.response_emotion_labels,
        paths.response_confusion_png,
        title="Response emotion choice",
    )
    plot_latency_histogram(result.latencies_ms, paths.latency_png)

    reply_metrics = {**(relevance.summary() if relevance else {}), **(judge.summary() if judge else {})}
    summary = {
        **result.summary(),
        **reply_metrics,
        **(speech.summary if speech else {}),
        **(generalization.summary() if generalization else {}),
    }
    not_computed = {
        **(not_computed or {}),
        **({METRIC_EMPATHY_SCORE: judge.reason} if judge and not judge.computed else {}),
        **(speech.not_computed if speech else {}),
    }
    for name, part in ((RELEVANCE_FILE, relevance), (EMPATHY_JUDGE_FILE, judge)):
        if part:
            (out_dir / name).write_text(json.dumps(part.to_dict(), indent=2) + "\n", encoding="utf-8")
            paths.reply_files.append(out_dir / name)
    document = {
        "title": title,
        "summary": summary,
        "not_computed": not_computed,
        "split": split,
        "detail": result.to_dict(),
        "speech": speech.to_dict() if speech else None,
        "generalization": generalization.to_dict() if generalization else None,
    }
    paths.metrics_json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    sections = (
        _sections(result, (samples or [])[:max_samples], reply_metrics)
        + _reply_sections(relevance, judge)
        + (_speech_sections(speech) if speech else [])
    )
    figures = [
        ("User emotion confusion", paths.user_confusion_png),
        ("Response emotion confusion", paths.response_confusion_png),
        ("Latency", paths.latency_png),
    ]
    if generalization:
        sections[1:1] = _generalization_sections(generalization)  # right after the metrics: it qualifies them
        paths.generalization_files = _generalization_plots(generalization, out_dir)
        figures[1:1] = list(
            zip(
                (
                    "User emotion confusion, unseen voices",
                    "User emotion accuracy by voice",
                    "User emotion accuracy by channel effect",
                ),
                paths.generalization_files,
            )
        )
    if speech:
        paths.speech_files = list(speech.files) + [out_dir / SPEECH_METRICS_FILE, out_dir / SPEECH_JUDGE_FILE]
        figures += [
            (caption, out_dir / name)
            for caption, name in (("Reply prosody by emotion", PROSODY_PNG), ("One text, two emotions", CONTRAST_PNG))
            if (out_dir / name).is_file()
        ]
    paths.markdown.write_text(render_markdown(title, sections, figures), encoding="utf-8")
    paths.html.write_text(render_html(title, sections, figures), encoding="utf-8")
    return paths


def _sections(result: EvalResult, samples: list[PredictionRecord], reply_metrics: dict[str, float]) -> list[Section]:
    metrics = [
        [key, f"{value:.4g}", _METRIC_NOTES[key]] for key, value in {**result.summary(), **reply_metrics}.items()
    ]
    classes = [
        [c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)]
        for c in result.user_emotion_per_class
    ]
    sections = [
        ("Metrics", ["metric", "value", "meaning"], metrics),
        ("User emotion per class", ["emotion", "precision", "recall", "f1", "support"], classes),
    ]
    if samples:
        rows = [
            [
                s.id,
                _pair(s.user_emotion, s.predicted_user_emotion),
                _pair(s.response_emotion, s.predicted_response_emotion),
                s.reference_text,
                s.predicted_text,
                f"{s.latency_s * 1000:.0f}",
            ]
            for s in samples
        ]
        sections.append(
            (
                "Sample predictions",
                ["id", "user emotion", "response emotion", "reference reply", "predicted reply", "ms"],
                rows,
            )
        )
    return sections


def _reply_sections(relevance: RelevanceResult | None, judge: JudgeResult | None, shown: int = 5) -> list[Section]:
    """Does the reply answer what the user said? The least relevant replies, and the empathy judge's verdicts."""
    sections: list[Section] = []
    if relevance:
        rows = [
            [r.id, r.user_text, r.reply, r.reference, f"{r.relevance_user:.2f}", f"{r.relevance_reference:.2f}"]
            for r in relevance.least_relevant(shown)
        ]
        sections.append(
            (
                f"Least relevant replies (cosine of sentence embeddings; mean to the user's words "
                f"{relevance.summary()[METRIC_RELEVANCE_USER]:.3f}, to the reference "
                f"{relevance.summary()[METRIC_RELEVANCE_REFERENCE]:.3f})",
                ["id", "user said", "reply", "reference reply", "to user", "to reference"],
                rows,
            )
        )
    if judge and judge.computed:
        counts = ", ".join(f"{score}: {n}" for score, n in judge.to_dict()["counts"].items())
        rows = [[row.id, str(row.score), row.reason] for row in judge.lowest(shown)]
        sections.append(
            (
                f"Empathy judge ({judge.model}, rubric after the paper's Emotion GPT Score): mean "
                f"{judge.mean:.2f} of 5 over {len(judge.rows)} replies (scores {counts}); lowest scored",
                ["id", "score", "the judge's reason"],
                rows,
            )
        )
    elif judge:
        sections.append(
            ("Empathy judge", ["metric", "value", "why"], [[METRIC_EMPATHY_SCORE, "not computed", judge.reason]])
        )
    return sections


def _generalization_sections(general: GeneralizationResult) -> list[Section]:
    seen, unseen = general.seen.summary(), general.summary()
    rows = [
        [
            base,
            f"{seen[base]:.4g}",
            f"{unseen[name]:.4g}",
            "" if base == METRIC_NUM_SAMPLES else f"{seen[base] - unseen[name]:+.4g}",
        ]
        for name, base in UNSEEN_VOICE_METRICS.items()
    ]

    def groups(found):
        return [[g.group, g.split, str(g.n), f"{g.accuracy:.3f}"] for g in found]

    return [
        (
            "Unseen voices: in-distribution test vs voices no training turn used",
            ["metric", "test (training voices)", UNSEEN_VOICE_SPLIT, "gap"],
            rows,
        ),
        ("User emotion accuracy by voice", ["voice", "split", "n", "accuracy"], groups(general.by_voice)),
        (
            "User emotion accuracy by channel effect (a turn through two effects counts under both)",
            ["effect", "split", "n", "accuracy"],
            groups(general.by_channel),
        ),
    ]


def _generalization_plots(general: GeneralizationResult, out_dir: Path) -> list[Path]:
    def bars(found):
        return [(g.group, g.split, g.n, g.accuracy) for g in found]

    return [
        plot_confusion_matrix(
            general.unseen.user_emotion_confusion,
            general.unseen.user_emotion_labels,
            out_dir / UNSEEN_CONFUSION_PNG,
            title="User emotion recognition, unseen voices",
        ),
        plot_group_accuracy(
            bars(general.by_voice),
            out_dir / VOICE_ACCURACY_PNG,
            title="User emotion accuracy by voice",
            split_colours=_SPLIT_COLOURS,
        ),
        plot_group_accuracy(
            bars(general.by_channel),
            out_dir / CHANNEL_ACCURACY_PNG,
            title="User emotion accuracy by channel effect",
            split_colours=_SPLIT_COLOURS,
        ),
    ]


def _speech_sections(speech: SpeechEvalResult) -> list[Section]:
    metrics = [[key, f"{value:.4g}", _METRIC_NOTES.get(key, "")] for key, value in speech.summary.items()]
    metrics += [[key, "not computed", reason] for key, reason in speech.not_computed.items()]
    targets = [
        [t.metric, f"{t.op} {t.target:g}", "not computed" if t.value is None else f"{t.value:.3g}", t.status]
        for t in speech.targets
    ]
    sections = [
        ("Speech metrics (the model's own voice)", ["metric", "value", "meaning"], metrics),
        ("Speech targets", ["metric", "target", "value", "status"], targets),
    ]
    if speech.judge:
        labels = list(speech.judge.labels)
        rows = [[label, *map(str, counts)] for label, counts in zip(labels, speech.judge.confusion)]
        sections.append(
            (
                f"Speech-emotion judge on reference replies (accuracy {speech.judge.accuracy:.3f}; "
                "rows: reference, columns: heard)",
                ["", *labels],
                rows,
            )
        )
    if speech.per_emotion:

        def cell(value, fmt):
            return "-" if value is None else format(value, fmt)

        rows = [
            [
                emotion,
                f"{v['generated_n']} / {v['reference_n']}",
                f"{cell(v['generated_pitch_hz'], '.0f')} / {cell(v['reference_pitch_hz'], '.0f')}",
                f"{cell(v['generated_energy_db'], '.1f')} / {cell(v['reference_energy_db'], '.1f')}",
                f"{cell(v['generated_rate_wps'], '.2f')} / {cell(v['reference_rate_wps'], '.2f')}",
            ]
            for emotion, v in speech.per_emotion.items()
        ]
        sections.append(
            (
                "Prosody per emotion, generated / reference (medians)",
                ["emotion", "clips", "pitch Hz", "energy dB", "words/s"],
                rows,
            )
        )
    return sections


def _pair(reference: str, predicted: str) -> str:
    """'sad ✓' when right, 'sad → happy ✗' when wrong."""
    return f"{reference} ✓" if reference == predicted else f"{reference} → {predicted} ✗"
