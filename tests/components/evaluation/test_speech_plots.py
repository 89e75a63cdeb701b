"""Speech figures: both PNGs render headless, show what they claim, and refuse empty input."""

import numpy as np
import pytest
from matplotlib.image import imread

from components.evaluation.speech_metrics import Prosody
from components.evaluation.speech_plots import plot_prosody_by_emotion, plot_spectrograms

SR = 16_000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _prosody(pitch, energy, rate):
    return Prosody(
        duration_s=3.0,
        speech_s=2.8,
        energy_db=energy,
        voiced_fraction=0.8 if pitch else 0.0,
        pitch_hz=pitch,
        pitch_range_st=4.0 if pitch else None,
        speaking_rate_wps=rate,
        pitch_note=None if pitch else "no voiced frames",
    )


def _tone(f0, seconds):
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def _has_colour(png, rgb_hex, min_pixels=200):
    """Whether at least `min_pixels` pixels are within a few levels of `rgb_hex`."""
    image = imread(png)[..., :3]
    target = np.array([int(rgb_hex[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return int(np.sum(np.all(np.abs(image - target) < 0.02, axis=-1))) >= min_pixels


def test_prosody_plot_draws_generated_beside_reference(tmp_path):
    generated = {
        "comforting": [_prosody(180, -22, 2.5), _prosody(175, -23, None), _prosody(None, -30, 2.4)],
        "excited": [_prosody(300, -16, 3.6), _prosody(310, -15, 3.4)],
    }
    reference = {
        "comforting": [_prosody(182, -22, 2.4)] * 3,
        "excited": [_prosody(305, -15.5, 3.5)] * 2,
        "not-a-contract-label": [_prosody(200, -20, 3.0)],
    }

    path = plot_prosody_by_emotion(generated, reference, tmp_path / "prosody.png")

    assert path.read_bytes().startswith(_PNG_MAGIC) and path.stat().st_size > 20_000
    assert _has_colour(path, "#4a7ab5") and _has_colour(path, "#b0b0b0")  # both sides drawn


def test_prosody_plot_refuses_nothing_to_draw(tmp_path):
    with pytest.raises(ValueError, match="no prosody to plot"):
        plot_prosody_by_emotion({"calm": []}, {}, tmp_path / "empty.png")


def test_spectrograms_stack_one_panel_per_clip(tmp_path):
    one = plot_spectrograms([("low", _tone(150, 1.0))], tmp_path / "one.png")
    two = plot_spectrograms([("low", _tone(150, 1.0)), ("high, longer", _tone(300, 1.5))], tmp_path / "two.png")

    assert two.read_bytes().startswith(_PNG_MAGIC) and two.stat().st_size > 20_000
    assert imread(two).shape[0] > 1.5 * imread(one).shape[0]  # a second panel, not a squeezed one
    with pytest.raises(ValueError, match="no clips to plot"):
        plot_spectrograms([], tmp_path / "none.png")
