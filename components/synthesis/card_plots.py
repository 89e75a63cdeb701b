"""PNG figures for the dataset card: label balance, durations, pitch per emotion, engines and filter drops.

    paths = write_card_plots(rows, dataset_dir, dataset_dir / "plots", filter_report=report)
    # {"emotion_domain": .../emotion_domain.png, "durations": ..., "pitch_by_emotion": ..., "engines": ...,
    #  "filter_drops": ...}   (filter_drops only with a filter report)

Built in the platform's one plotting style (components/plotting.py: matplotlib's object API, never `pyplot`).
Everything but the
pitch plot comes from the manifest rows; the pitch plot reads the user turns' audio. All five for
300 dialogues took 4.4 s on a busy 2-core machine, the pitch of the 300 user turns 1.7 s of it on one thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from components.contracts import DOMAINS, SAMPLE_RATE, SPLITS, USER_EMOTIONS
from components.plotting import boxes_with_counts, new_figure, save_figure
from components.synthesis.filters import ASR_WER, AUDIO_REASONS, EMOTION_INCONSISTENT, FilterReport, filter_of
from components.synthesis.taxonomy import speaker_engine

# Plot name -> file name; write_card_plots returns {name: path} for those it wrote.
CARD_PLOTS: dict[str, str] = {
    "emotion_domain": "emotion_domain.png",
    "durations": "durations.png",
    "pitch_by_emotion": "pitch_by_emotion.png",
    "engines": "engines.png",
    "filter_drops": "filter_drops.png",
}

_BAR = "#4a7ab5"
_SPLIT_COLOURS = ("#4a7ab5", "#e08a3c", "#6aa84f", "#a64d79", "#888888")
# Pitch: YIN at 8 kHz every 20 ms (a 640 Hz ceiling is far below its Nyquist), over frames within about 10 dB of
# the clip's loudest: vowels, where pitch is defined. About 6 ms a 3 s clip against pYIN's 0.15 s.
_PITCH_RATE = 8_000
_PITCH_FRAME, _PITCH_HOP = 512, 160
_FMIN_HZ, _FMAX_HZ = 60.0, 640.0
_LOUD_FRAME = 0.3  # RMS share of the loudest frame
_MIN_PITCH_FRAMES = 5  # 100 ms of loud frames, else the clip's pitch is unknown


def median_pitch_hz(wave: np.ndarray) -> float | None:
    """Median YIN pitch (Hz) of a 16 kHz clip's loud frames; None for a clip with under 100 ms of them."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.size < _PITCH_FRAME * SAMPLE_RATE // _PITCH_RATE or not np.isfinite(wave).all():
        return None
    low = librosa.resample(wave, orig_sr=SAMPLE_RATE, target_sr=_PITCH_RATE, res_type="soxr_hq")
    f0 = librosa.yin(
        low, fmin=_FMIN_HZ, fmax=_FMAX_HZ, sr=_PITCH_RATE, frame_length=_PITCH_FRAME, hop_length=_PITCH_HOP
    )
    rms = librosa.feature.rms(y=low, frame_length=_PITCH_FRAME, hop_length=_PITCH_HOP)[0]
    n = min(f0.size, rms.size)
    loud = rms[:n] > _LOUD_FRAME * rms.max()
    if loud.sum() < _MIN_PITCH_FRAMES:
        return None
    return float(np.median(f0[:n][loud]))


def write_card_plots(
    rows: Sequence[dict],
    dataset_dir: str | Path,
    out_dir: str | Path,
    filter_report: FilterReport | Mapping | None = None,
    *,
    workers: int = 2,
) -> dict[str, Path]:
    """Write the card's PNGs for manifest `rows` (user wavs read from `dataset_dir`) into `out_dir`.

    `filter_report` (a FilterReport or its summary() dict) adds the filter-drops plot and the duration limits.
    Returns {plot name: path} in CARD_PLOTS order. Raises ValueError for no rows.
    """
    if not rows:
        raise ValueError(
            "no manifest rows to plot. Fix: pass the dataset's rows (read_manifest) or the kept rows "
            "of a filter report."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = filter_report.summary() if isinstance(filter_report, FilterReport) else filter_report
    paths = {
        "emotion_domain": _emotion_domain(rows, out_dir / CARD_PLOTS["emotion_domain"]),
        "durations": _durations(rows, out_dir / CARD_PLOTS["durations"], (summary or {}).get("config")),
        "pitch_by_emotion": _pitch_by_emotion(
            rows, Path(dataset_dir), out_dir / CARD_PLOTS["pitch_by_emotion"], workers
        ),
        "engines": _engines(rows, out_dir / CARD_PLOTS["engines"]),
    }
    if summary is not None:
        paths["filter_drops"] = _filter_drops(summary, out_dir / CARD_PLOTS["filter_drops"])
    return paths


def _emotion_domain(rows: Sequence[dict], path: Path) -> Path:
    domains = _ordered({row["domain"] for row in rows}, DOMAINS)
    emotions = _ordered({row["user_emotion"] for row in rows}, USER_EMOTIONS)
    counts = np.zeros((len(emotions), len(domains)), dtype=np.int64)  # (E, D)
    for row in rows:
        counts[emotions.index(row["user_emotion"]), domains.index(row["domain"])] += 1
    figure = new_figure(2.2 + 0.48 * len(domains), 1.4 + 0.42 * len(emotions))
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0, aspect="auto")
    for (e, d), n in np.ndenumerate(counts):
        colour = "#b0b0b0" if n == 0 else ("white" if n > 0.6 * counts.max() else "black")
        axes.text(d, e, str(n), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(domains)), labels=domains, rotation=40, ha="right", fontsize=8)
    axes.set_yticks(range(len(emotions)), labels=[f"{e} ({n})" for e, n in zip(emotions, counts.sum(axis=1))])
    axes.set_xlabel("domain")
    axes.set_ylabel("user emotion (dialogues)")
    axes.set_title(f"Dialogues per user emotion and domain (n={len(rows)})")
    figure.colorbar(image, ax=axes, label="dialogues", shrink=0.8)
    return save_figure(figure, path)


def _durations(rows: Sequence[dict], path: Path, config: Mapping | None) -> Path:
    figure = new_figure(6.4, 5.2)
    panels = figure.subplots(2, 1, sharex=True)
    for axes, turn in zip(panels, ("user", "response")):
        values = np.asarray([row[f"{turn}_duration_s"] for row in rows], dtype=np.float64)
        axes.hist(values, bins=int(np.clip(np.sqrt(values.size), 5, 40)), color=_BAR, edgecolor="white")
        if config:  # the filter's limits, so a reader sees how close the data runs to them
            for limit in (config["min_duration_s"], config["max_duration_s"]):
                axes.axvline(limit, color="#c0392b", linestyle=":", linewidth=1.5)
        axes.set_ylabel("clips")
        axes.set_title(f"{turn} turns: median {np.median(values):.1f} s, max {values.max():.1f} s", fontsize=10)
    panels[-1].set_xlabel("duration (s)" + (", dotted: filter limits" if config else ""))
    return save_figure(figure, path)


def _pitch_by_emotion(rows: Sequence[dict], dataset_dir: Path, path: Path, workers: int) -> Path:
    def pitch(row: dict) -> float | None:
        wave, rate = sf.read(dataset_dir / row["user_wav"], dtype="float32", always_2d=True)
        return median_pitch_hz(wave.mean(axis=1)) if rate == SAMPLE_RATE else None

    with ThreadPoolExecutor(max_workers=workers) as pool:  # librosa's YIN and resampling release the GIL
        pitches = list(pool.map(pitch, rows))
    emotions = _ordered({row["user_emotion"] for row in rows}, USER_EMOTIONS)
    data = [[p for p, row in zip(pitches, rows) if p is not None and row["user_emotion"] == e] for e in emotions]
    figure = new_figure(2.0 + 0.9 * len(emotions), 4.0)
    axes = figure.add_subplot()
    boxes_with_counts(axes, data, range(len(emotions)), colour=_BAR, width=0.5)
    axes.set_xticks(range(len(emotions)), labels=emotions, rotation=30, ha="right")
    axes.set_xlim(-0.6, len(emotions) - 0.4)
    axes.set_ylabel("median pitch per clip (Hz)")
    unknown = sum(p is None for p in pitches)
    axes.set_title(
        "User-turn pitch by emotion" + (f" ({unknown} clips without pitch left out)" if unknown else ""), fontsize=10
    )
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)


def _engines(rows: Sequence[dict], path: Path) -> Path:
    engines = sorted({speaker_engine(row["speaker"]) for row in rows})
    splits = _ordered({row["split"] for row in rows}, SPLITS)
    counts = Counter((speaker_engine(row["speaker"]), row["split"]) for row in rows)
    voices = {e: len({row["speaker"] for row in rows if speaker_engine(row["speaker"]) == e}) for e in engines}
    figure = new_figure(6.4, 1.4 + 0.45 * len(engines))
    axes = figure.add_subplot()
    positions = np.arange(len(engines))[::-1]  # first engine on top
    left = np.zeros(len(engines))
    for split, colour in zip(splits, _SPLIT_COLOURS * len(splits)):
        widths = np.asarray([counts[(e, split)] for e in engines], dtype=np.float64)
        axes.barh(positions, widths, left=left, color=colour, label=split)
        left += widths
    for y, total in zip(positions, left):
        axes.text(total, y, f" {int(total)}", va="center", fontsize=8)
    axes.set_yticks(positions, labels=[f"{e} ({voices[e]} voice{'s' * (voices[e] != 1)})" for e in engines])
    axes.set_xlim(0, left.max() * 1.12)
    axes.set_xlabel("dialogues (user turns)")
    axes.set_title("User turns per TTS engine and split")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="split", title_fontsize=8)
    return save_figure(figure, path)


def _filter_drops(summary: Mapping, path: Path) -> Path:
    """Drops per reason code, every code a bar (zeros included, so "no silence drops" is visible, not absent),
    beside drops per user emotion: a filter that drops one emotion more than others skews the label balance."""
    reasons = [f"user:{code}" for code in (*AUDIO_REASONS, EMOTION_INCONSISTENT, ASR_WER)]
    reasons += [f"response:{code}" for code in AUDIO_REASONS]
    by_reason = summary["dropped_by_reason"]
    reasons += sorted(set(by_reason) - set(reasons))
    skipped = summary.get("skipped", {})
    by_emotion = summary.get("dropped_by_user_emotion", {})
    figure = new_figure(9.6, 1.6 + 0.3 * len(reasons))
    reason_axes, emotion_axes = figure.subplots(1, 2, width_ratios=(3, 2))
    labels = [r + (" (skipped)" if filter_of(r) in skipped else "") for r in reasons]
    _bars(reason_axes, labels, [by_reason.get(r, 0) for r in reasons])
    reason_axes.set_xlabel("dialogues dropped (one can have several reasons)")
    reason_axes.set_title(f"Filter drops: {summary['n_dropped']} of {summary['n_in']} dialogues", fontsize=10)
    if skipped:
        reason_axes.annotate(
            "skipped: " + ", ".join(sorted(skipped)),
            (1, 0),
            xycoords="axes fraction",
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color="#555555",
        )
    emotions = _ordered(set(by_emotion), USER_EMOTIONS)
    _bars(emotion_axes, emotions, [by_emotion[e] for e in emotions])
    emotion_axes.set_xlabel("dialogues dropped")
    emotion_axes.set_title("by user emotion", fontsize=10)
    return save_figure(figure, path)


def _bars(axes, labels: Sequence[str], values: Sequence[int]) -> None:
    """Horizontal count bars, first label on top; zeros grey, counts written beside the bars."""
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions, values, color=["#c0392b" if v else "#b0b0b0" for v in values])
    for y, value in zip(positions, values):
        axes.text(value, y, f" {value}", va="center", fontsize=8)
    axes.set_yticks(positions, labels=labels, fontsize=8)
    axes.set_xlim(0, max(1, max(values, default=0)) * 1.15)


def _ordered(present: set[str], contract: tuple[str, ...]) -> list[str]:
    """Contract order first, then anything else alphabetically (older or newer manifests)."""
    return [label for label in contract if label in present] + sorted(present - set(contract))
