"""evaluate_model(): run a trained model over a held-out split and write metrics, plots and a report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from components.audio.io import load_wav
from components.contracts import METRIC_RELEVANCE_REFERENCE, METRIC_RELEVANCE_USER, UNSEEN_VOICE_SPLIT
from components.errors import ConfigError
from components.evaluation.dnsmos import MetricNotComputed
from components.evaluation.empathy_judge import JudgeItem, JudgeResult, empathy_judge_from_env, judge_replies
from components.evaluation.generalization import GeneralizationResult, generalization
from components.evaluation.metrics import EvalResult, compute_metrics
from components.evaluation.records import PredictionRecord
from components.evaluation.relevance import RelevanceResult, score_relevance
from components.evaluation.report import ReportPaths, write_report
from components.evaluation.speech_eval import SpeechEvalConfig, SpeechEvalResult, evaluate_speech
from components.evaluation.split import split_fingerprint
from components.inference import EmotionOmniResponder
from components.synthesis import read_manifest


@dataclass
class Evaluation:
    result: EvalResult
    records: list[PredictionRecord]
    report: ReportPaths
    speech: SpeechEvalResult | None = None
    generalization: GeneralizationResult | None = None  # when the dataset has an unseen-voice split
    relevance: RelevanceResult | None = None
    judge: JudgeResult | None = None

    def summary(self) -> dict[str, float]:
        """Text, speech and unseen-voice metrics together, under their contract names (KFP, MLflow, the gate)."""
        return {
            **self.result.summary(),
            **(self.relevance.summary() if self.relevance else {}),
            **(self.judge.summary() if self.judge else {}),
            **(self.speech.summary if self.speech else {}),
            **(self.generalization.summary() if self.generalization else {}),
        }


def predict(
    responder: EmotionOmniResponder, rows: list[dict], dataset_dir: Path, progress: bool = True
) -> list[PredictionRecord]:
    """One utterance at a time, as a user would send them, so latency is per-utterance serving latency."""
    records = []
    for row in tqdm(rows, desc="evaluate", unit="utt", disable=not progress, mininterval=2.0):
        wave = load_wav(Path(dataset_dir) / row["user_wav"])
        start = time.perf_counter()
        reply = responder.respond(wave)
        latency = time.perf_counter() - start
        records.append(
            PredictionRecord(
                id=row["id"],
                user_emotion=row["user_emotion"],
                predicted_user_emotion=reply.user_emotion,
                response_emotion=row["response_emotion"],
                predicted_response_emotion=reply.response_emotion,
                reference_text=row["response_text"],
                predicted_text=reply.text,
                latency_s=latency,
                user_text=row["user_text"],
            )
        )
    return records


def evaluate_model(
    model_dir: Path,
    dataset_dir: Path,
    out_dir: Path,
    split: str = "test",
    limit: int | None = None,
    progress: bool = True,
    speech: bool = True,
    speech_config: SpeechEvalConfig = SpeechEvalConfig(),
) -> Evaluation:
    """Text and emotions one utterance at a time (latency as a user sees it), then, with `speech`, the model's
    reply speech in batches (components.evaluation.speech_eval). Evaluating the "test" split also scores the
    dataset's unseen-voice split, when it has one, beside it (text and emotions;
    components.evaluation.generalization)."""
    manifest = read_manifest(dataset_dir)
    rows = [r for r in manifest if r["split"] == split][:limit]
    if not rows:
        raise ConfigError(
            f"{dataset_dir} has no '{split}' rows to evaluate: synthesize with a test split "
            "(test_fraction > 0) or pass another --split"
        )
    judge = empathy_judge_from_env()  # before the minutes of predicting: a configured judge must answer
    responder = EmotionOmniResponder.from_pretrained(model_dir, speak=False)
    records = predict(responder, rows, dataset_dir, progress)
    result = compute_metrics(records)
    relevance, not_computed = text_relevance(records)
    judged = judge_replies(
        [JudgeItem(r.id, r.user_text, r.user_emotion, r.predicted_text, r.predicted_response_emotion) for r in records],
        judge,
        progress=progress,
    )
    general = None
    unseen_rows = [r for r in manifest if r["split"] == UNSEEN_VOICE_SPLIT][:limit] if split == "test" else []
    if unseen_rows:
        unseen_records = predict(responder, unseen_rows, dataset_dir, progress)
        general = generalization(result, compute_metrics(unseen_records), records + unseen_records, rows + unseen_rows)
    speech_result = None
    if speech:
        responder.speak = True
        train_texts = [r["response_text"] for r in manifest if r["split"] == "train"]
        speech_result = evaluate_speech(responder, rows, Path(dataset_dir), Path(out_dir), train_texts, speech_config)
    scored = {
        "name": split,
        "rows": len(rows) + len(unseen_rows),
        "fingerprint": split_fingerprint(rows + unseen_rows, Path(dataset_dir)),
    }
    report = write_report(
        result,
        Path(out_dir),
        samples=records[:8],
        speech=speech_result,
        generalization=general,
        relevance=relevance,
        judge=judged,
        split=scored,
        not_computed=not_computed,
        title=f"Emotion Omni evaluation ({split}, n={len(records)})",
    )
    return Evaluation(result, records, report, speech_result, general, relevance, judged)


def text_relevance(records: list[PredictionRecord]) -> tuple[RelevanceResult | None, dict[str, str]]:
    """Relevance of each reply to the user's words and to the reference, or None and why (the sentence encoder is
    not installed: the metrics are then reported as not computed)."""
    try:
        return score_relevance(
            [r.predicted_text for r in records],
            [r.reference_text for r in records],
            [r.user_text for r in records],
            [r.id for r in records],
        ), {}
    except MetricNotComputed as err:
        return None, {METRIC_RELEVANCE_USER: err.reason, METRIC_RELEVANCE_REFERENCE: err.reason}
