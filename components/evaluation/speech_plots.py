"""PNG figures for the spoken replies: prosody per emotion (generated vs reference) and spectrograms.

Built in the platform's one plotting style (components/plotting.py: matplotlib's object API, never `pyplot`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import librosa
import numpy as np
from matplotlib import patheffects
from matplotlib.patches import Patch

from components.contracts import RESPONSE_EMOTIONS, SAMPLE_RATE
from components.evaluation.speech_metrics import Prosody, pitch_track
from components.plotting import boxes_with_counts, new_figure, save_figure

_GENERATED_COLOUR = "#4a7ab5"
_REFERENCE_COLOUR = "#b0b0b0"
# Spectrogram: 32 ms windows every 10 ms, shown up to 5 kHz where the formants and harmonics of speech are.
_N_FFT = 512
_HOP = 160
_MAX_SHOWN_HZ = 5000
_DYNAMIC_RANGE_DB = 70  # quieter bins are drawn as the floor colour, so noise does not clutter the picture

# The three panels of plot_prosody_by_emotion: title and how to read one value off a Prosody.
_PANELS = (
    ("median pitch (Hz)", lambda p: p.pitch_hz),
    ("energy (dB re full scale)", lambda p: p.energy_db),
    ("speaking rate (words/s)", lambda p: p.speaking_rate_wps),
)


def plot_prosody_by_emotion(
    generated: Mapping[str, Sequence[Prosody]],
    reference: Mapping[str, Sequence[Prosody]],
    out_png: str | Path,
    *,
    title: str = "Reply prosody by emotion",
) -> Path:
    """Box plots of pitch, energy and speaking rate per emotion, generated beside reference; returns the path.

    Emotions appear in contract order, then any others alphabetically. Clips whose value is None (no pitch,
    or no text for the rate) are left out and each box is labelled with how many clips it holds, so a
    thin box is visible as such. Raises ValueError when there is nothing at all to draw.
    """
    emotions = _emotion_order(set(generated) | set(reference))
    if not any(generated.get(e) or reference.get(e) for e in emotions):
        raise ValueError("no prosody to plot. Fix: pass {emotion: [Prosody, ...]} for at least one clip.")
    figure = new_figure(3.2 + 1.1 * len(emotions), 8.4)
    panels = figure.subplots(len(_PANELS), 1, sharex=True)
    positions = np.arange(len(emotions), dtype=np.float64)
    for axes, (label, value_of) in zip(panels, _PANELS):
        for side, (clips, colour, offset) in enumerate(
            ((generated, _GENERATED_COLOUR, -0.2), (reference, _REFERENCE_COLOUR, 0.2))
        ):
            data = [[v for v in map(value_of, clips.get(e, ())) if v is not None] for e in emotions]
            boxes_with_counts(
                axes, data, positions + offset, colour=colour, width=0.34, showfliers=True, manage_ticks=False
            )
            if side == 0:
                axes.set_ylabel(label)
        axes.grid(axis="y", alpha=0.3)
    panels[0].legend(
        handles=[
            Patch(facecolor=_GENERATED_COLOUR, edgecolor="#333333", label="generated"),
            Patch(facecolor=_REFERENCE_COLOUR, edgecolor="#333333", label="reference"),
        ],
        loc="upper right",
        fontsize=8,
    )
    panels[-1].set_xticks(positions, labels=emotions, rotation=30, ha="right")
    panels[0].set_title(title)
    return save_figure(figure, out_png)


def plot_spectrograms(
    items: Sequence[tuple[str, np.ndarray]],
    out_png: str | Path,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Spectrogram of each (title, wave), one above the other on a shared time axis, with its pitch track.

    Meant for showing replies to the same text with different emotions: the white line is pYIN pitch
    (right axis, Hz), so pitch level, range and timing can be compared at a glance; white space after a
    clip means it ended there. Returns the path.
    """
    if not items:
        raise ValueError("no clips to plot. Fix: pass [(title, wave), ...] with at least one clip.")
    longest = max(len(wave) for _, wave in items) / sample_rate
    figure = new_figure(8.0, 0.6 + 2.4 * len(items))
    panels = np.atleast_1d(figure.subplots(len(items), 1, sharex=True))
    for axes, (title, wave) in zip(panels, items):
        wave = np.asarray(wave, dtype=np.float32)
        power = np.abs(librosa.stft(wave, n_fft=_N_FFT, hop_length=_HOP)) ** 2  # (bins, frames)
        decibels = librosa.power_to_db(power, ref=np.max, top_db=_DYNAMIC_RANGE_DB)
        frequencies = librosa.fft_frequencies(sr=sample_rate, n_fft=_N_FFT)
        times = librosa.frames_to_time(np.arange(decibels.shape[1]), sr=sample_rate, hop_length=_HOP)
        image = axes.pcolormesh(times, frequencies, decibels, shading="auto", cmap="magma", rasterized=True)
        axes.set_ylim(0, min(_MAX_SHOWN_HZ, sample_rate / 2))
        axes.set_ylabel("frequency (Hz)")
        axes.set_title(title, loc="left", fontsize=10)
        pitch_times, f0, voiced = pitch_track(wave, sample_rate)
        pitch_axes = axes.twinx()
        pitch_axes.plot(
            pitch_times,
            np.where(voiced, f0, np.nan),
            color="white",
            linewidth=1.8,
            path_effects=[patheffects.Stroke(linewidth=3.2, foreground="black"), patheffects.Normal()],
        )
        pitch_axes.set_ylabel("pitch (Hz)")
        pitch_axes.set_ylim(50, 500)  # a fixed scale, so panels compare: 50-500 Hz spans every voice here
        median = np.median(f0[voiced]) if voiced.any() else None
        pitch_axes.text(
            0.99,
            0.92,
            "no voiced frames" if median is None else f"median {median:.0f} Hz",
            transform=axes.transAxes,
            ha="right",
            va="top",
            color="white",
            fontsize=9,
            bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
        )
        figure.colorbar(image, ax=[axes, pitch_axes], label="dB re clip peak", pad=0.01, shrink=0.9)
    panels[-1].set_xlabel("time (s)")
    panels[-1].set_xlim(0, longest)
    return save_figure(figure, out_png)


def _emotion_order(emotions: set[str]) -> list[str]:
    """Contract order first, so every report lists emotions the same way; unknown labels after, sorted."""
    return [e for e in RESPONSE_EMOTIONS if e in emotions] + sorted(emotions - set(RESPONSE_EMOTIONS))
