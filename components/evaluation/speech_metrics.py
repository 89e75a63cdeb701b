"""Objective measures of spoken replies: mel-cepstral distortion, STOI, prosody and speaking rate.

    mcd = mel_cepstral_distortion(reference_wave, generated_wave)   # dB, 0 for identical audio
    stoi = stoi_score(reference_wave, resynthesised_wave)           # 0..1, time-aligned signals only
    p = prosody(wave, text="Thank you for telling me.")             # Prosody(pitch_hz=212.4, ...)

All functions take float mono waveforms (T,) such as `components.audio.load_wav` returns and raise
SpeechMetricError, naming the argument and the fix, for audio they cannot measure (empty, silent, too short,
non-finite). None of them ever returns NaN or a placeholder: an unvoiced clip reports `pitch_hz=None` with
the reason in `pitch_note`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.fft

from components.audio.io import SILENCE_PEAK
from components.contracts import SAMPLE_RATE
from components.errors import OmniError

# Frames quieter than this many dB below the loudest frame are silence; 40 dB is below every phoneme of
# espeak-ng speech and above the noise floor a vocoder leaves between words.
_SILENCE_TOP_DB = 40.0

# --- pitch (pYIN) ---------------------------------------------------------------------------------------
# pYIN costs a Python loop per frame plus a Viterbi pass over the pitch bins; these settings took it from
# 4.8 s (librosa's defaults) to about 0.15 s per 7 s clip on one core of a busy 2-core machine:
# * the search runs at 8 kHz: a 640 Hz ceiling is far below its Nyquist and the YIN frames halve;
_PITCH_RATE = 8_000
# * 60-640 Hz covers a low male voice to an excited high female one (espeak-ng's excited reply voice
#   peaks near 430 Hz), with room for a vocoder's octave errors to show instead of being clipped;
_FMIN_HZ = 60.0
_FMAX_HZ = 640.0
# * 64 ms frames hold two periods of 60 Hz; a 30 ms hop instead of 20 ms cut the time by 40% and moved
#   medians by under 3 Hz and ranges by under 0.3 semitones on the reply voice;
_PITCH_FRAME = 512
_PITCH_HOP = 240
# * quarter-semitone bins instead of the default tenth: medians moved by under 2 Hz, the run time halved.
_PITCH_RESOLUTION = 0.25
# Fewer voiced frames (150 ms at the 30 ms hop) and a median pitch would describe a click, not a voice.
_MIN_VOICED_FRAMES = 5
# Percentiles spanned by the pitch range: robust to the octave jumps a pitch tracker makes at voicing edges.
_RANGE_PERCENTILES = (10.0, 90.0)

# --- mel cepstra for MCD ------------------------------------------------------------------------------
_MCD_N_FFT = 1024  # 64 ms at 16 kHz: resolves harmonics of voices down to ~60 Hz
_MCD_HOP_S = 0.005  # 5 ms, the frame shift MCD is conventionally reported at (SPTK's default)
_MCD_N_MELS = 40
_MCD_ORDER = 13  # c1..c13; c0 (overall level) is left out so loudness does not count as distortion
_MCD_FLOOR = 1e-5  # mel amplitude floor before the log, so digital silence does not dominate
_MIN_MCD_SECONDS = 0.1  # below this there are too few frames for DTW to align anything meaningful
# 10/ln10 * sqrt(2): converts a natural-log cepstral distance to dB (Kubichek 1993).
_MCD_DB = 10.0 / math.log(10.0) * math.sqrt(2.0)

_WORD = re.compile(r"\w+(?:'\w+)?")  # "I'll" is one word, as a listener counts it


class SpeechMetricError(OmniError, ValueError):
    """Audio or text a speech metric cannot measure. The message names the argument and the fix."""


@dataclass(frozen=True)
class Prosody:
    """Utterance-level prosody of one clip; every number is measured, None only with a reason."""

    duration_s: float  # the whole clip, silence included
    speech_s: float  # first to last non-silent frame: pauses between words count
    energy_db: float  # RMS level of the non-silent frames, dB re full scale
    voiced_fraction: float  # share of the speech span's frames that carry pitch, 0..1
    pitch_hz: float | None  # median pitch over voiced frames
    pitch_range_st: float | None  # 10th to 90th percentile of pitch, in semitones
    speaking_rate_wps: float | None  # words per second of speech; None when no text was given
    pitch_note: str | None = None  # why pitch_hz is None

    def to_dict(self) -> dict:
        """The fields as JSON-ready builtins."""
        return dataclasses.asdict(self)


def prosody(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, text: str | None = None) -> Prosody:
    """Measure pitch, pitch range, voicing, loudness and duration of one clip (and speaking rate given `text`).

    Pitch comes from pYIN (librosa) over the speech span only, so leading and trailing silence cost no
    time and do not dilute the voiced fraction. Takes about 0.15 s per 7 s clip on one core.
    """
    words = None if text is None else _words(text)  # a bad text fails before the slow pitch search
    wave = _checked(wave, "wave", sample_rate)
    start, end = _speech_span(wave, "wave")
    speech = wave[start:end]
    _, f0, voiced = pitch_track(speech, sample_rate)
    pitch_hz = pitch_range = note = None
    values = f0[voiced]
    if values.size >= _MIN_VOICED_FRAMES:
        low, high = np.percentile(values, _RANGE_PERCENTILES)
        pitch_hz = float(np.median(values))
        pitch_range = float(12.0 * np.log2(high / low))
    else:
        note = (
            f"{values.size * _PITCH_HOP / _PITCH_RATE:.2f} s of voiced audio, under the "
            f"{_MIN_VOICED_FRAMES * _PITCH_HOP / _PITCH_RATE:.2f} s a pitch needs: the clip is whispered, "
            "noise or too short"
        )
    return Prosody(
        duration_s=len(wave) / sample_rate,
        speech_s=len(speech) / sample_rate,
        energy_db=_active_energy_db(speech),
        voiced_fraction=float(voiced.mean()) if voiced.size else 0.0,
        pitch_hz=pitch_hz,
        pitch_range_st=pitch_range,
        speaking_rate_wps=None if words is None else words / (len(speech) / sample_rate),
        pitch_note=note,
    )


def speaking_rate(wave: np.ndarray, text: str, sample_rate: int = SAMPLE_RATE) -> float:
    """Words in `text` per second of speech in `wave` (leading and trailing silence excluded, pauses kept)."""
    wave = _checked(wave, "wave", sample_rate)
    start, end = _speech_span(wave, "wave")
    return _words(text) / ((end - start) / sample_rate)


def pitch_track(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN pitch every 30 ms: (times_s (F,), f0_hz (F,), voiced (F,) bool); f0 is NaN where unvoiced.

    The NaNs suit plotting (matplotlib leaves gaps); summaries must index with `voiced`.
    """
    wave = _checked(wave, "wave", sample_rate)
    low_rate = librosa.resample(wave, orig_sr=sample_rate, target_sr=_PITCH_RATE, res_type="soxr_hq")
    f0, voiced, _ = librosa.pyin(
        low_rate,
        fmin=_FMIN_HZ,
        fmax=_FMAX_HZ,
        sr=_PITCH_RATE,
        frame_length=_PITCH_FRAME,
        hop_length=_PITCH_HOP,
        resolution=_PITCH_RESOLUTION,
    )
    voiced = voiced & np.isfinite(f0)
    times = librosa.frames_to_time(np.arange(f0.size), sr=_PITCH_RATE, hop_length=_PITCH_HOP)
    return times, f0, voiced


def mel_cepstral_distortion(reference: np.ndarray, generated: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mel-cepstral distortion in dB between two utterances of the same text, aligned by DTW.

    Cepstra: c1..c13 of the DCT of the natural-log mel amplitude spectrum (40 bands, 64 ms window, 5 ms
    hop). Not librosa's MFCC: that takes the log in dB (10*log10 power), which would make the textbook
    constant 10/ln10 * sqrt(2) count the dB scaling twice. With the natural log and the unnormalised DCT
    divided by 2*bands, c_d is the cepstrum of the mel-warped log spectrum, the quantity SPTK's mel-cepstrum
    approximates, so values land on the familiar scale (a few dB between two syntheses of one sentence).
    Leading and trailing silence is trimmed first; then MCD = mean over the DTW path of
    10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2). Identical signals give exactly 0.
    """
    ref = _mel_cepstra(_checked(reference, "reference", sample_rate), "reference", sample_rate)  # (D, N)
    gen = _mel_cepstra(_checked(generated, "generated", sample_rate), "generated", sample_rate)  # (D, M)
    _, path = librosa.sequence.dtw(X=ref, Y=gen, metric="euclidean")  # path: (L, 2) pairs (n, m)
    differences = ref[:, path[:, 0]] - gen[:, path[:, 1]]  # (D, L)
    return float(np.mean(_MCD_DB * np.sqrt(np.sum(differences**2, axis=0))))


def stoi_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (pystoi, classic STOI) of `degraded` against `reference`, 0..1.

    STOI compares the two signals frame by frame, so it is only meaningful for time-aligned audio, e.g. the
    vocoder's resynthesis of a reference clip. Both are cut to the shorter length, which absorbs the few
    frames of padding a vocoder adds; it does not align replies of different lengths (use MCD for those).
    Raises SpeechMetricError where pystoi would return its 1e-5 placeholder (under ~0.4 s of speech).
    """
    from pystoi import stoi  # imported when used: only this metric needs pystoi

    reference = _checked(reference, "reference", sample_rate)
    degraded = _checked(degraded, "degraded", sample_rate)
    n = min(len(reference), len(degraded))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(stoi(reference[:n].astype(np.float64), degraded[:n].astype(np.float64), sample_rate))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise SpeechMetricError(
            f"STOI needs about 0.4 s of non-silent audio and the signals share {n / sample_rate:.2f} s with "
            "too little speech; score longer clips or skip STOI for this one"
        )
    return score


def _mel_cepstra(wave: np.ndarray, name: str, sample_rate: int) -> np.ndarray:
    """c1..c13 (13, frames) of the natural-log mel amplitude spectrum of the speech span of `wave`."""
    start, end = _speech_span(wave, name)
    speech = wave[start:end]
    if len(speech) < _MIN_MCD_SECONDS * sample_rate:
        raise SpeechMetricError(
            f"{name} has {len(speech) / sample_rate:.3f} s of speech, under the {_MIN_MCD_SECONDS} s MCD needs; "
            "pass the whole utterance"
        )
    mel = librosa.feature.melspectrogram(
        y=speech,
        sr=sample_rate,
        n_fft=_MCD_N_FFT,
        hop_length=round(_MCD_HOP_S * sample_rate),
        n_mels=_MCD_N_MELS,
        power=1.0,
    )  # (bands, frames) amplitude
    # Unnormalised DCT-II / (2 * bands): a log spectrum c0 + 2*sum c_d cos(d w) maps back to exactly c_d.
    cepstra = scipy.fft.dct(np.log(np.maximum(mel, _MCD_FLOOR)), type=2, axis=0) / (2 * _MCD_N_MELS)
    return cepstra[1 : _MCD_ORDER + 1]


def _speech_span(wave: np.ndarray, name: str) -> tuple[int, int]:
    """Sample indices [start, end) from the first to the last non-silent frame."""
    # 32 ms frames every 8 ms: librosa's default 128 ms frames overstated a 2 s utterance by 0.11 s
    _, (start, end) = librosa.effects.trim(wave, top_db=_SILENCE_TOP_DB, frame_length=512, hop_length=128)
    if end <= start:
        raise SpeechMetricError(f"{name} holds no speech above the silence threshold; check the audio source")
    return int(start), int(end)


def _active_energy_db(speech: np.ndarray) -> float:
    """RMS level in dB re full scale over the frames within 40 dB of the loudest one."""
    rms = librosa.feature.rms(y=speech, frame_length=400, hop_length=160)[0]  # (frames,) 25 ms every 10 ms
    active = rms >= rms.max() * 10 ** (-_SILENCE_TOP_DB / 20)
    return float(10.0 * np.log10(np.mean(rms[active] ** 2)))


def _words(text: str) -> int:
    if not isinstance(text, str) or not _WORD.search(text):
        raise SpeechMetricError(f"text {text!r} has no words to count; pass the reply text the clip speaks")
    return len(_WORD.findall(text))


def _checked(wave: np.ndarray, name: str, sample_rate: int) -> np.ndarray:
    """`wave` as float32 (T,), refusing what no metric can measure."""
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise SpeechMetricError(f"sample_rate must be a positive int, got {sample_rate!r}; audio here is {SAMPLE_RATE}")
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise SpeechMetricError(f"{name} must be mono (T,), got shape {wave.shape}; downmix with wave.mean(axis=1)")
    if wave.size == 0:
        raise SpeechMetricError(f"{name} is empty; the reply produced no audio, so there is nothing to measure")
    if not np.issubdtype(wave.dtype, np.floating) or not np.isfinite(wave).all():
        raise SpeechMetricError(
            f"{name} must hold finite floats in [-1, 1], got dtype {wave.dtype}; read audio with "
            "components.audio.load_wav"
        )
    if np.abs(wave).max() < SILENCE_PEAK:
        raise SpeechMetricError(f"{name} is digital silence; the reply produced no audible speech")
    return wave.astype(np.float32, copy=False)
