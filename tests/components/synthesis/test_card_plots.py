"""The dataset card's PNGs: every plot is written as a valid PNG, from new and old (bare espeak voice) speakers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from components.audio import save_wav
from components.contracts import SAMPLE_RATE, USER_EMOTIONS
from components.synthesis.card_plots import CARD_PLOTS, median_pitch_hz, write_card_plots
from components.synthesis.filters import FilterConfig, apply_filters, read_turns
from components.synthesis.taxonomy import speaker_engine

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Old manifests name a bare espeak-ng voice; newer ones "<engine>:<voice>".
SPEAKERS = ("flite:slt", "espeak-ng:en-us+m3", "en-us+m3", "festival:kal_diphone", "en+f4")


def voiced(f0_hz: float, seconds: float) -> np.ndarray:
    """A harmonic tone (five partials) with a 3 Hz level wobble: voiced audio with a known pitch, no TTS needed."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6))
    return (0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A 13-dialogue dataset directory of tones (pitch rising with the emotion's index); the last user turn silent."""
    root = tmp_path_factory.mktemp("card-plots")
    rows = []
    for i in range(13):
        emotion = USER_EMOTIONS[i % len(USER_EMOTIONS)]
        user = voiced(110 + 30 * USER_EMOTIONS.index(emotion), 1.0 + 0.2 * i)
        if i == 12:
            user = np.zeros(SAMPLE_RATE, np.float32)
        response = voiced(220, 3.0 + 0.3 * i)
        row = {
            "id": f"{i + 1:06d}",
            "split": ("train", "test", "test_unseen_voice")[i % 3],
            "domain": ("work", "family", "health")[i % 3],
            "speaker": SPEAKERS[i % len(SPEAKERS)],
            "user_emotion": emotion,
            "user_text": "Hello there.",
            "user_wav": f"wavs/{i + 1:06d}_user.wav",
            "user_duration_s": len(user) / SAMPLE_RATE,
            "user_channel": "",
            "response_emotion": "calm",
            "response_text": "I am here.",
            "response_wav": f"wavs/{i + 1:06d}_response.wav",
            "response_duration_s": len(response) / SAMPLE_RATE,
        }
        save_wav(root / row["user_wav"], user)
        save_wav(root / row["response_wav"], response)
        rows.append(row)
    return root, rows


def assert_png(path) -> None:
    assert path.is_file() and path.stat().st_size > 5_000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert imread(path).ndim == 3  # decodes as an image


def test_every_plot_is_a_valid_png_with_a_filter_report(dataset, tmp_path):
    root, rows = dataset
    report = apply_filters(rows, read_turns(rows, root), FilterConfig(emotion_consistency="off"))
    assert [d.reasons for d in report.dropped] == [["user:silence"]]
    paths = write_card_plots(report.kept, root, tmp_path / "plots", filter_report=report)
    assert list(paths) == list(CARD_PLOTS)
    for name, path in paths.items():
        assert path == tmp_path / "plots" / CARD_PLOTS[name]
        assert_png(path)


def test_plots_from_rows_alone_and_from_a_summary_dict(dataset, tmp_path):
    root, rows = dataset
    paths = write_card_plots(rows, root, tmp_path / "a")  # the silent clip has no pitch: left out, not an error
    assert list(paths) == [name for name in CARD_PLOTS if name != "filter_drops"]
    summary = {
        "n_in": 3,
        "n_kept": 2,
        "n_dropped": 1,
        "dropped_by_reason": {"user:silence": 1},
        "skipped": {"asr_wer": "no whisper_path configured"},
        "dropped_by_user_emotion": {"sad": 1},
    }
    assert_png(write_card_plots(rows[:3], root, tmp_path / "b", filter_report=summary)["filter_drops"])
    with pytest.raises(ValueError, match="no manifest rows"):
        write_card_plots([], root, tmp_path / "c")


def test_speaker_engine_reads_old_bare_espeak_speakers():
    assert [speaker_engine(s) for s in SPEAKERS] == ["flite", "espeak-ng", "espeak-ng", "festival", "espeak-ng"]


def test_median_pitch_of_a_known_tone():
    assert median_pitch_hz(voiced(150.0, 1.0)) == pytest.approx(150.0, rel=0.03)
    assert median_pitch_hz(np.zeros(100, np.float32)) is None
