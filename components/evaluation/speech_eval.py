"""evaluate_speech(): the model's own reply speech on the held-out split, four ways.

1. Free replies, what a user hears: does a speech-emotion judge (trained here, independent of the model) hear
   the emotion the model chose, and the reference reply's? Pitch, energy and rate per emotion against the
   reference replies (plot; rank correlation of per-emotion median pitch); DNSMOS on a sample, a named
   stand-in for UTMOS; the talker + vocoder real-time factor.
2. The talker speaking the reference text (teacher-forced thinker, its own predicted emotion): mel-cepstral
   distortion against the reference audio after DTW. MCD needs the same words; free replies have others.
3. Resynthesis: the reference's own units through the token2wav, conditioned on the reference emotion: STOI and
   MCD against the reference. This is the vocoder's ceiling, whatever the talker does.
4. One reference text spoken with two emotion vectors: the spectrogram + pitch figure the README shows.

A metric that cannot be computed (a stage-1 model, DNSMOS without its package, too few replies with pitch) is
listed under `not_computed` with its reason, never given a value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from components.audio.io import load_wav, save_wav
from components.contracts import (
    METRIC_DNSMOS_BAK,
    METRIC_DNSMOS_OVRL,
    METRIC_DNSMOS_SIG,
    METRIC_MCD_DB,
    METRIC_PITCH_ORDER_SPEARMAN,
    METRIC_RESYNTHESIS_MCD_DB,
    METRIC_RESYNTHESIS_STOI,
    METRIC_SPEECH_EMOTION_AGREEMENT,
    METRIC_SPEECH_EMOTION_REFERENCE,
    METRIC_SPEECH_JUDGE_ACCURACY,
    METRIC_SPEECH_RTF,
    METRIC_SPEECH_SILENT_FRACTION,
    METRIC_UTMOS,
    SAMPLE_RATE,
    SPEECH_JUDGE_FILE,
    SPEECH_METRICS_FILE,
)
from components.evaluation.dnsmos import MetricNotComputed, dnsmos
from components.evaluation.speech_emotion import (
    JudgeScore,
    SpeechEmotionClassifier,
    judge_accuracy,
    speak_in_every_emotion,
)
from components.evaluation.speech_metrics import (
    Prosody,
    SpeechMetricError,
    mel_cepstral_distortion,
    prosody,
    stoi_score,
)
from components.evaluation.speech_plots import plot_prosody_by_emotion, plot_spectrograms
from components.evaluation.targets import TargetCheck, Targets, check_targets
from components.evaluation.utmos import utmos
from components.inference import EmotionOmniResponder
from components.model.tokenizer import encode_response

PROSODY_PNG = "prosody_by_emotion.png"
CONTRAST_PNG = "emotion_contrast.png"

# The targets for the demo data: printed beside each figure, met or not. Chance agreement is 1/7.
SPEECH_TARGETS: Targets = {
    METRIC_SPEECH_EMOTION_AGREEMENT: (">=", 0.6),
    METRIC_RESYNTHESIS_STOI: (">=", 0.7),
    METRIC_PITCH_ORDER_SPEARMAN: (">=", 0.8),  # "generated pitch per emotion ordered like the reference's"
}


@dataclass(frozen=True)
class SpeechEvalConfig:
    judge_texts: int = 70  # train reply texts the judge hears in every emotion (490 clips, ~20 s)
    compare_clips: int = 30  # replies for the same-text comparisons (MCD, resynthesis STOI)
    dnsmos_clips: int = 12  # DNSMOS takes ~2 s a clip on 2 cores
    batch_size: int = 16  # replies generated together
    contrast_emotions: tuple[str, str] = ("comforting", "excited")  # the README's same-text pair
    seed: int = 0


@dataclass
class SpeechEvalResult:
    summary: dict[str, float]  # computed metrics only, under contracts.METRIC_* names
    not_computed: dict[str, str]  # metric -> why it has no value
    targets: list[TargetCheck]
    judge: JudgeScore | None
    per_emotion: dict[str, dict] = field(default_factory=dict)  # medians per emotion, generated and reference
    files: list[Path] = field(default_factory=list)  # plots and WAVs written

    def to_dict(self) -> dict:
        data = asdict(self)
        data["files"] = [str(p) for p in self.files]
        return data


def evaluate_speech(
    responder: EmotionOmniResponder,
    rows: list[dict],
    dataset_dir: Path,
    out_dir: Path,
    train_texts: list[str],
    config: SpeechEvalConfig = SpeechEvalConfig(),
) -> SpeechEvalResult:
    """Score the model's reply speech on `rows` (a held-out split); write plots, WAVs and SPEECH_METRICS_FILE."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not responder.can_speak:
        reason = "the model has no talker (a stage-1 model): train stage 2 for speech"
        names = [
            *SPEECH_TARGETS,
            METRIC_SPEECH_EMOTION_REFERENCE,
            METRIC_MCD_DB,
            METRIC_RESYNTHESIS_MCD_DB,
            METRIC_DNSMOS_OVRL,
            METRIC_UTMOS,
            METRIC_SPEECH_RTF,
        ]
        return _finish(SpeechEvalResult({}, {name: reason for name in names}, [], None), out_dir)
    dataset_dir = Path(dataset_dir)
    references = [load_wav(dataset_dir / r["response_wav"]) for r in rows]
    summary: dict[str, float] = {}
    not_computed: dict[str, str] = {}

    # 1. Free replies.
    replies, speak_seconds = [], 0.0
    for start in range(0, len(rows), config.batch_size):
        batch = rows[start : start + config.batch_size]
        replies += responder.respond_batch([load_wav(dataset_dir / r["user_wav"]) for r in batch])
        speak_seconds += responder.last_timings["speak_s"]
    spoken = [i for i, reply in enumerate(replies) if reply.audio.size]
    audio_seconds = sum(replies[i].audio.size for i in spoken) / SAMPLE_RATE
    summary[METRIC_SPEECH_SILENT_FRACTION] = 1 - len(spoken) / len(replies)
    if audio_seconds:
        summary[METRIC_SPEECH_RTF] = speak_seconds / audio_seconds

    judge_waves, judge_labels = speak_in_every_emotion(train_texts[: config.judge_texts], seed=config.seed)
    judge = SpeechEmotionClassifier().fit(judge_waves, judge_labels, seed=config.seed)
    judge.save(out_dir / SPEECH_JUDGE_FILE)
    score = judge_accuracy(judge, references, [r["response_emotion"] for r in rows])
    summary[METRIC_SPEECH_JUDGE_ACCURACY] = score.accuracy
    if spoken:
        heard = judge.predict([replies[i].audio for i in spoken])
        summary[METRIC_SPEECH_EMOTION_AGREEMENT] = float(
            np.mean([h == replies[i].response_emotion for h, i in zip(heard, spoken)])
        )
        summary[METRIC_SPEECH_EMOTION_REFERENCE] = float(
            np.mean([h == rows[i]["response_emotion"] for h, i in zip(heard, spoken)])
        )
    else:
        for name in (METRIC_SPEECH_EMOTION_AGREEMENT, METRIC_SPEECH_EMOTION_REFERENCE):
            not_computed[name] = "no reply got audio"

    generated = _prosody_by(
        lambda i: replies[i].response_emotion, spoken, [r.audio for r in replies], [r.text for r in replies]
    )
    reference = _prosody_by(
        lambda i: rows[i]["response_emotion"], range(len(rows)), references, [r["response_text"] for r in rows]
    )
    per_emotion, spearman = _pitch_order(generated, reference)
    if spearman is None:
        not_computed[METRIC_PITCH_ORDER_SPEARMAN] = "fewer than 3 emotions have a pitch in both generated and reference"
    else:
        summary[METRIC_PITCH_ORDER_SPEARMAN] = spearman
    files = [
        plot_prosody_by_emotion(
            generated,
            reference,
            out_dir / PROSODY_PNG,
            title="Reply prosody by emotion: generated (model's emotion) vs reference",
        )
    ]
    _dnsmos([replies[i].audio for i in spoken[: config.dnsmos_clips]], summary, not_computed)
    _utmos([replies[i].audio for i in spoken[: config.dnsmos_clips]], summary, not_computed)

    # 2 + 3. The same words: the talker speaking the reference text, and the reference units resynthesised.
    compare = list(range(min(config.compare_clips, len(rows))))
    forced = _speak_reference_texts(responder, rows, dataset_dir, compare, config.batch_size)
    token2wav, codebook = responder.model.token2wav, responder.model.thinker.emotion_codebook
    emotions = responder.model.config.thinker_config.response_emotions
    resynthesised = [
        token2wav.synthesize(
            token2wav.extract_units(references[i]), codebook[emotions.index(rows[i]["response_emotion"])]
        )
        for i in compare
    ]
    _mean_metric(
        METRIC_MCD_DB,
        [(references[i], forced[k]) for k, i in enumerate(compare)],
        mel_cepstral_distortion,
        summary,
        not_computed,
    )
    _mean_metric(
        METRIC_RESYNTHESIS_MCD_DB,
        [(references[i], resynthesised[k]) for k, i in enumerate(compare)],
        mel_cepstral_distortion,
        summary,
        not_computed,
    )
    _mean_metric(
        METRIC_RESYNTHESIS_STOI,
        [(references[i], resynthesised[k]) for k, i in enumerate(compare)],
        stoi_score,
        summary,
        not_computed,
    )

    # 4. One text, two emotions.
    files += _emotion_contrast(responder, rows[0], dataset_dir, out_dir, config.contrast_emotions)
    for i in spoken[:2]:
        files.append(save_wav(out_dir / f"reply_{rows[i]['id']}.wav", replies[i].audio))

    targets = check_targets(summary, SPEECH_TARGETS)
    return _finish(SpeechEvalResult(summary, not_computed, targets, score, per_emotion, files), out_dir)


def _finish(result: SpeechEvalResult, out_dir: Path) -> SpeechEvalResult:
    (out_dir / SPEECH_METRICS_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _prosody_by(emotion_of, indices, waves, texts) -> dict[str, list[Prosody]]:
    grouped: dict[str, list[Prosody]] = {}
    for i in indices:
        try:
            grouped.setdefault(emotion_of(i), []).append(prosody(waves[i], text=texts[i]))
        except SpeechMetricError:  # silence or a clip too short to measure: left out, counted by the plot
            continue
    return grouped


def _median_pitch(clips: list[Prosody]) -> float | None:
    values = [p.pitch_hz for p in clips if p.pitch_hz is not None]
    return float(np.median(values)) if values else None


def _pitch_order(generated: dict[str, list[Prosody]], reference: dict[str, list[Prosody]]):
    """Per-emotion medians and the Spearman correlation of median pitch over emotions present on both sides."""
    per_emotion = {}
    for emotion in sorted(set(generated) | set(reference)):
        gen, ref = generated.get(emotion, []), reference.get(emotion, [])
        per_emotion[emotion] = {
            "generated_n": len(gen),
            "reference_n": len(ref),
            "generated_pitch_hz": _median_pitch(gen),
            "reference_pitch_hz": _median_pitch(ref),
            "generated_energy_db": float(np.median([p.energy_db for p in gen])) if gen else None,
            "reference_energy_db": float(np.median([p.energy_db for p in ref])) if ref else None,
            "generated_rate_wps": float(np.median([p.speaking_rate_wps for p in gen])) if gen else None,
            "reference_rate_wps": float(np.median([p.speaking_rate_wps for p in ref])) if ref else None,
        }
    both = [
        e for e, v in per_emotion.items() if v["generated_pitch_hz"] is not None and v["reference_pitch_hz"] is not None
    ]
    if len(both) < 3:
        return per_emotion, None
    rho = spearmanr(
        [per_emotion[e]["generated_pitch_hz"] for e in both], [per_emotion[e]["reference_pitch_hz"] for e in both]
    ).statistic
    return per_emotion, float(rho)


def _dnsmos(waves: list[np.ndarray], summary: dict, not_computed: dict) -> None:
    names = {METRIC_DNSMOS_OVRL: "ovrl", METRIC_DNSMOS_SIG: "sig", METRIC_DNSMOS_BAK: "bak"}
    if not waves:
        not_computed.update({name: "no reply got audio" for name in names})
        return
    try:
        scores = dnsmos(waves)
    except MetricNotComputed as error:
        not_computed.update({name: error.reason for name in names})
        return
    for name, key in names.items():
        summary[name] = float(np.mean([s[key] for s in scores]))


def _utmos(waves: list[np.ndarray], summary: dict, not_computed: dict) -> None:
    """UTMOS on the same sample as DNSMOS, when a checkpoint is configured (components.evaluation.utmos)."""
    try:
        if not waves:
            raise MetricNotComputed(METRIC_UTMOS, "no reply got audio")
        summary[METRIC_UTMOS] = float(np.mean(utmos(waves)))
    except MetricNotComputed as error:
        not_computed[METRIC_UTMOS] = error.reason


def _mean_metric(name: str, pairs, metric, summary: dict, not_computed: dict) -> None:
    values = []
    for reference, other in pairs:
        try:
            values.append(metric(reference, other))
        except SpeechMetricError:  # an empty or silent generated clip has no value to average
            continue
    if values:
        summary[name] = float(np.mean(values))
    else:
        not_computed[name] = "no clip could be scored (all generated audio empty or silent)"


def _speak_reference_texts(
    responder: EmotionOmniResponder, rows: list[dict], dataset_dir: Path, indices: list[int], batch_size: int
) -> list[np.ndarray]:
    model, config = responder.model, responder.model.config.thinker_config
    audio: list[np.ndarray] = []
    for start in range(0, len(indices), batch_size):
        batch = [rows[i] for i in indices[start : start + batch_size]]
        features, frames = responder.frontend([load_wav(dataset_dir / r["user_wav"]) for r in batch])
        ids = [
            torch.tensor(
                encode_response(responder.tokenizer, r["response_text"], config.eos_token_id), device=responder.device
            )
            for r in batch
        ]
        _, spoken, _ = model.speak_text(features.to(responder.device), frames.to(responder.device), ids)
        audio += spoken
    return audio


def _emotion_contrast(
    responder: EmotionOmniResponder, row: dict, dataset_dir: Path, out_dir: Path, emotions: tuple[str, str]
) -> list[Path]:
    """The reference text of `row` spoken with each of `emotions` as the condition: a figure and two WAVs."""
    model, config = responder.model, responder.model.config.thinker_config
    features, frames = responder.frontend([load_wav(dataset_dir / row["user_wav"])] * 2)
    ids = torch.tensor(
        encode_response(responder.tokenizer, row["response_text"], config.eos_token_id), device=responder.device
    )
    vectors = model.thinker.emotion_codebook[[config.response_emotions.index(e) for e in emotions]]
    _, audio, _ = model.speak_text(features.to(responder.device), frames.to(responder.device), [ids, ids], vectors)
    files = [save_wav(out_dir / f"contrast_{emotion}.wav", wave) for emotion, wave in zip(emotions, audio)]
    if all(a.size for a in audio):
        text = row["response_text"] if len(row["response_text"]) < 70 else row["response_text"][:67] + "..."
        files.append(
            plot_spectrograms([(f'{e}: "{text}"', a) for e, a in zip(emotions, audio)], out_dir / CONTRAST_PNG)
        )
    return files
