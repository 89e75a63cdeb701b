"""SpeechEmotionClassifier: a small judge that hears which reply emotion a clip was spoken with.

    waves, labels = speak_in_every_emotion(train_reply_texts[:70])   # 490 reference-voice clips, ~12 s
    judge = SpeechEmotionClassifier().fit(waves, labels)              # ~7 s on 2 cores
    judge.predict([generated_wave])                                   # ["comforting"]
    judge.save(out / "speech_emotion_judge.json")

The judge is trained by the pipeline, independently of the model under test, on the reference reply voice
(espeak-ng's assistant voice with each emotion's prosody profile). It must hear the voice, not the words.
The dataset's reference replies cannot teach that: every emotion has its own phrasing ("I'm so sorry" is
apologetic), and a judge trained on them scored 1.00 on a 300-dialogue set's 60 held-out replies but 0.41
when each held-out sentence was spoken in all seven emotions. `speak_in_every_emotion` removes the
shortcut: it speaks each training text once per emotion, so the words carry no label. Trained so on 70
texts (490 clips) the judge scored 0.84 on those same-sentence clips and 0.82 on the held-out replies;
on 35 texts, 0.78 and 0.77. The voices it mixes up are the ones the prosody profiles place close together
(neutral with reassuring; comforting, apologetic and calm), so report its confusion with its accuracy.

Features are utterance statistics that ignore playback level (a vocoder's output gain is not an emotion):
log-mel spectral shape with each frame's mean level removed (mean, spread, and frame-to-frame change per
band), pitch statistics in semitones, rhythm (onsets and speech segments per second, pause share) and
loudness dynamics. The model is multinomial logistic regression with an L2 penalty: convex, so the fit is
reproducible, and small enough to store as plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from components.contracts import RESPONSE_EMOTIONS, SAMPLE_RATE
from components.errors import OmniError
from components.evaluation.classification import accuracy, confusion_matrix

# Bumped whenever utterance_features changes, so a judge saved with older features refuses to load.
FEATURE_VERSION = 1
_FORMAT = "emotion-omni/speech-emotion-judge"

_N_MELS = 40
_N_FFT = 512  # 32 ms at 16 kHz
_HOP = 160  # 10 ms; pitch frames fall on every _PITCH_STRIDE-th mel frame
_ACTIVE_TOP_DB = 35.0  # frames within 35 dB of the loudest are speech
# Pitch for the judge comes from plain YIN at 8 kHz every 20 ms (about 15 ms per clip), not pYIN (0.15 s):
# pYIN would make feature extraction for 245 + 60 clips take ~50 s. The judge only compares clips of one
# pipeline with each other, which YIN gated by a voicing test does consistently.
_PITCH_RATE = 8_000
_PITCH_STRIDE = 2  # pitch every 2nd mel frame (20 ms): YIN was two thirds of the feature time
_FMIN_HZ, _FMAX_HZ = 60.0, 640.0
_MAX_VOICED_ZCR = 0.15  # zero-crossing rate per sample above which a frame is fricative or noise
_MIN_VOICED_FRAMES = 5  # 100 ms: fewer and the pitch statistics are left unknown
_MAX_PITCH_STEP_ST = 2.0  # frame-to-frame pitch steps above this are tracking errors, not intonation

FEATURE_NAMES: tuple[str, ...] = (
    *(f"mel_shape_mean_{b}" for b in range(_N_MELS)),
    *(f"mel_shape_std_{b}" for b in range(_N_MELS)),
    *(f"mel_delta_std_{b}" for b in range(_N_MELS)),
    "pitch_median_st",
    "pitch_p05_st",
    "pitch_p10_st",
    "pitch_p25_st",
    "pitch_p75_st",
    "pitch_p90_st",
    "pitch_p95_st",
    "pitch_std_st",
    "pitch_range_st",
    "pitch_step_st",
    "voiced_fraction",
    "onsets_per_s",
    "segments_per_s",
    "active_fraction",
    "log_speech_s",
    "level_std_db",
    "level_peak_over_median_db",
    "spectral_tilt",
)


class JudgeError(OmniError, ValueError):
    """The judge cannot be trained, applied or loaded as asked. The message says why and how to fix it."""


@dataclass
class JudgeScore:
    n: int
    accuracy: float
    confusion: list[list[int]]  # rows: reference, columns: predicted, in `labels` order
    labels: tuple[str, ...]


def utterance_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Level-independent utterance statistics of one clip: (len(FEATURE_NAMES),) float64.

    The ten pitch statistics are NaN when the clip has under 100 ms of voiced speech; the classifier then
    treats them as uninformative (see SpeechEmotionClassifier). Raises JudgeError for empty or silent audio.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
        raise JudgeError(f"need a non-empty, finite mono wave (T,), got shape {wave.shape}; read it with load_wav")
    if sample_rate != SAMPLE_RATE:  # the band layout assumes 16 kHz
        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=_N_FFT, hop_length=_HOP, n_mels=_N_MELS)
    log_mel = np.log(mel + 1e-10)  # (bands, frames)
    level_db = 20 * np.log10(librosa.feature.rms(y=wave, frame_length=_N_FFT, hop_length=_HOP)[0] + 1e-10)
    if level_db.max() < -80:
        raise JudgeError("the clip is silent (peak frame below -80 dBFS); there is no voice to judge")
    active = level_db > level_db.max() - _ACTIVE_TOP_DB  # (frames,)
    active_mel = log_mel[:, active]
    shape = active_mel - active_mel.mean(axis=0)  # each frame's level removed: gain-independent
    delta_std = np.diff(active_mel, axis=1).std(axis=1) if active_mel.shape[1] > 1 else np.zeros(_N_MELS)

    pitch = _pitch_statistics(wave, active)
    first, last = np.flatnonzero(active)[[0, -1]]
    speech_s = (last - first + 1) * _HOP / SAMPLE_RATE
    rise = np.maximum(0.0, np.diff(level_db, prepend=level_db[0]))  # level increases: syllable onsets
    onsets = librosa.onset.onset_detect(onset_envelope=rise, sr=SAMPLE_RATE, hop_length=_HOP)
    segments = int(np.sum(np.diff(active.astype(np.int8)) == 1)) + 1
    tilt = np.polyfit(np.arange(_N_MELS), shape.mean(axis=1), 1)[0]  # log-mel slope per band
    active_db = level_db[active]
    rhythm_and_level = [
        len(onsets) / speech_s,
        segments / speech_s,
        active[first : last + 1].mean(),
        np.log(speech_s),
        active_db.std(),
        np.percentile(active_db, 95) - np.median(active_db),
        tilt,
    ]
    return np.concatenate([shape.mean(axis=1), shape.std(axis=1), delta_std, pitch, rhythm_and_level])


class SpeechEmotionClassifier:
    """Multinomial logistic regression over utterance_features, trained and applied in float64."""

    def __init__(self, labels: Sequence[str] = RESPONSE_EMOTIONS, *, l2: float = 10.0):
        # l2: sum-of-squares penalty on the weights, scaled by 1/n. It barely matters here: 3, 10, 30 and 100
        # scored within 0.025 of each other on held-out texts; 10 is in the middle of that plateau.
        self.labels = tuple(labels)
        self.l2 = float(l2)
        self._mean: np.ndarray | None = None  # (F,) training feature means
        self._scale: np.ndarray | None = None  # (F,) training feature standard deviations
        self._weight: np.ndarray | None = None  # (L, F)
        self._bias: np.ndarray | None = None  # (L,)

    def fit(self, waves: Sequence[np.ndarray], labels: Sequence[str], seed: int = 0) -> SpeechEmotionClassifier:
        """Train on 16 kHz clips and their emotion labels; returns self.

        Every label must have clips: a class never seen would never be predicted. The problem is convex,
        so `seed` only sets the starting point; fits from different seeds agree to optimiser tolerance.
        """
        if len(waves) != len(labels) or not waves:
            raise JudgeError(
                f"fit needs one label per clip and at least one clip, got {len(waves)} clips and {len(labels)} labels"
            )
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise JudgeError(
                f"labels {unknown} are not among the judge's {list(self.labels)}; fix the labels "
                "or construct the judge with labels=..."
            )
        missing = [label for label in self.labels if label not in set(labels)]
        if missing:
            raise JudgeError(
                f"labels {missing} have no training clips and could never be predicted; train on "
                "every label (speak_in_every_emotion does) or construct the judge with labels=..."
            )
        return self.fit_features(np.stack([utterance_features(w) for w in waves]), labels, seed)

    def fit_features(self, features: np.ndarray, labels: Sequence[str], seed: int = 0) -> SpeechEmotionClassifier:
        """`fit` on precomputed utterance_features (N, F): for callers that fit several judges on one set of
        clips (cross-fitting), so each clip's features are computed once. Checks the labels as `fit` does."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape != (len(labels), len(FEATURE_NAMES)):
            raise JudgeError(
                f"features must be (clips, {len(FEATURE_NAMES)}) from utterance_features with one "
                f"label per row, got shape {features.shape} and {len(labels)} labels"
            )
        unknown = sorted(set(labels) - set(self.labels))
        missing = [label for label in self.labels if label not in set(labels)]
        if unknown or missing:
            raise JudgeError(
                f"labels {unknown} are unknown to the judge and labels {missing} have no clips; "
                f"train on clips of exactly the judge's labels {list(self.labels)}"
            )
        self._mean = np.nanmean(features, axis=0)
        if np.isnan(self._mean).any():
            raise JudgeError(
                "no training clip has voiced speech, so pitch features cannot be learned; check the training audio"
            )
        self._scale = np.nanstd(features, axis=0)
        self._scale[self._scale < 1e-9] = 1.0  # a constant feature carries no information; avoid 0/0
        inputs = torch.from_numpy(self._standardise(features))
        targets = torch.tensor([self.labels.index(label) for label in labels])
        self._weight, self._bias = _fit_logistic(inputs, targets, len(self.labels), self.l2, seed)
        return self

    def predict(self, waves: Sequence[np.ndarray]) -> list[str]:
        """The emotion label heard in each clip."""
        if self._weight is None:
            raise JudgeError("the judge is not trained; call fit(...) or SpeechEmotionClassifier.load(path)")
        if not waves:
            return []
        return self.predict_features(np.stack([utterance_features(w) for w in waves]))

    def predict_features(self, features: np.ndarray) -> list[str]:
        """`predict` on precomputed utterance_features (N, F)."""
        if self._weight is None:
            raise JudgeError("the judge is not trained; call fit(...) or SpeechEmotionClassifier.load(path)")
        inputs = self._standardise(np.asarray(features, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)))
        logits = inputs @ self._weight.T + self._bias  # (N, L)
        return [self.labels[i] for i in logits.argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write the judge as JSON (no pickle): labels, feature names, standardisation and weights."""
        if self._weight is None:
            raise JudgeError("the judge is not trained; call fit(...) before save(...)")
        state = {
            "format": _FORMAT,
            "feature_version": FEATURE_VERSION,
            "labels": list(self.labels),
            "l2": self.l2,
            "feature_names": list(FEATURE_NAMES),
            "mean": self._mean.tolist(),
            "scale": self._scale.tolist(),
            "weight": self._weight.tolist(),
            "bias": self._bias.tolist(),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))  # float repr round-trips exactly, so load() predicts identically
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpeechEmotionClassifier:
        """Read a judge written by save(); refuses other files and judges built on other features."""
        path = Path(path)
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise JudgeError(f"cannot read a judge from {path}: {err}; pass the JSON file save() wrote") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise JudgeError(f"{path} is not a speech-emotion judge file; pass the JSON file save() wrote")
        if state.get("feature_version") != FEATURE_VERSION or state.get("feature_names") != list(FEATURE_NAMES):
            raise JudgeError(
                f"{path} was trained on feature version {state.get('feature_version')}, this code computes "
                f"version {FEATURE_VERSION}; retrain the judge (fit + save) with this code"
            )
        judge = cls(state["labels"], l2=state["l2"])
        judge._mean, judge._scale = np.asarray(state["mean"]), np.asarray(state["scale"])
        judge._weight, judge._bias = np.asarray(state["weight"]), np.asarray(state["bias"])
        if judge._weight.shape != (len(judge.labels), len(FEATURE_NAMES)):
            raise JudgeError(
                f"{path} holds weights of shape {judge._weight.shape}, expected "
                f"{(len(judge.labels), len(FEATURE_NAMES))}; the file is damaged: retrain the judge"
            )
        return judge

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        # A clip with no voiced speech has NaN pitch statistics; at the training mean (0 after scaling) they
        # add nothing to any class's score, so voicing and the other features decide.
        standard = (features - self._mean) / self._scale
        return np.nan_to_num(standard, nan=0.0)


def judge_accuracy(judge: SpeechEmotionClassifier, waves: Sequence[np.ndarray], labels: Sequence[str]) -> JudgeScore:
    """Score the judge on held-out clips with known labels: accuracy and confusion in the judge's label order."""
    unknown = sorted(set(labels) - set(judge.labels))
    if unknown:
        raise JudgeError(f"labels {unknown} are not among the judge's {list(judge.labels)}; score only those")
    predictions = judge.predict(waves)
    matrix = confusion_matrix(labels, predictions, judge.labels)
    return JudgeScore(n=len(predictions), accuracy=accuracy(matrix), confusion=matrix.tolist(), labels=judge.labels)


def speak_in_every_emotion(
    texts: Sequence[str],
    *,
    emotions: Sequence[str] = RESPONSE_EMOTIONS,
    seed: int = 0,
    workers: int = 2,
) -> tuple[list[np.ndarray], list[str]]:
    """Speak every text once per emotion in the reference reply voice: (waves, labels), text-major order.

    Uses the dataset's own synthesizer, voice (ASSISTANT_SPEAKER) and per-utterance jitter, so the clips
    sound like the reference replies while the words say nothing about the label. About 25 ms per clip
    with 2 workers; jitter comes from (seed, clip index), so the result does not depend on thread order.
    """
    from components.synthesis.speech import EspeakSpeech  # imported when used: it needs espeak-ng and sox
    from components.synthesis.taxonomy import ASSISTANT_SPEAKER

    if not texts:
        raise JudgeError("no texts to speak; pass reply texts from the training split")
    speech = EspeakSpeech()
    jobs = [(text, emotion) for text in texts for emotion in emotions]

    def speak(index: int) -> np.ndarray:
        text, emotion = jobs[index]
        return speech.synthesize(text, emotion, ASSISTANT_SPEAKER, np.random.default_rng([seed, index]))

    with ThreadPoolExecutor(max_workers=workers) as pool:  # each call waits on espeak-ng and sox processes
        waves = list(pool.map(speak, range(len(jobs))))
    return waves, [emotion for _, emotion in jobs]


def _pitch_statistics(wave: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The ten pitch features, in semitones re 100 Hz, over voiced active frames; NaN when too few are voiced."""
    low_rate = librosa.resample(wave, orig_sr=SAMPLE_RATE, target_sr=_PITCH_RATE, res_type="soxr_hq")
    hop = _PITCH_STRIDE * _HOP * _PITCH_RATE // SAMPLE_RATE  # frame k sits at the time of mel frame 2k
    f0 = librosa.yin(low_rate, fmin=_FMIN_HZ, fmax=_FMAX_HZ, sr=_PITCH_RATE, frame_length=512, hop_length=hop)
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=_N_FFT, hop_length=_PITCH_STRIDE * _HOP)[0]
    active = active[::_PITCH_STRIDE]
    n = min(f0.size, zcr.size, active.size)
    voiced = active[:n] & (zcr[:n] < _MAX_VOICED_ZCR)
    voiced_fraction = voiced.sum() / max(1, active[:n].sum())
    if voiced.sum() < _MIN_VOICED_FRAMES:
        return np.array([np.nan] * 10 + [voiced_fraction])
    semitones = 12 * np.log2(f0[:n][voiced] / 100.0)
    p05, p10, p25, p75, p90, p95 = np.percentile(semitones, [5, 10, 25, 75, 90, 95])
    steps = np.abs(np.diff(semitones))
    steps = steps[steps < _MAX_PITCH_STEP_ST]
    return np.array(
        [
            np.median(semitones),
            p05,
            p10,
            p25,
            p75,
            p90,
            p95,
            semitones.std(),
            p90 - p10,
            np.median(steps) if steps.size else 0.0,
            voiced_fraction,
        ]
    )


def _fit_logistic(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    n_labels: int,
    l2: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-penalised softmax regression by L-BFGS: (weight (L, F), bias (L,)) as float64 numpy arrays."""
    generator = torch.Generator().manual_seed(seed)
    weight = (0.01 * torch.randn(n_labels, inputs.shape[1], generator=generator, dtype=torch.float64)).requires_grad_()
    bias = torch.zeros(n_labels, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(inputs @ weight.T + bias, targets)
        loss = loss + l2 / (2 * len(targets)) * weight.pow(2).sum()  # bias unpenalised, as is usual
        loss.backward()
        return loss

    optimiser.step(closure)
    return weight.detach().numpy().copy(), bias.detach().numpy().copy()
