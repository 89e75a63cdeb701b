"""Emotional text-to-speech with espeak-ng and sox.

espeak-ng speaks SSML with the emotion's pitch, rate, loudness and pitch range (taxonomy.PROSODY); sox
applies the emotion's effects (tremolo for fear, overdrive for anger) and writes 16 kHz mono 16-bit WAV.
Both run as subprocesses with no shell, so calls are safe to make from a thread pool.

    tts = EspeakSpeech()
    wave = tts.synthesize("My flight got cancelled!", "angry", "en-us+m3", np.random.default_rng(0))
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

import numpy as np

from components.audio import AudioError, decode_wav
from components.contracts import SAMPLE_RATE
from components.errors import OmniError
from components.synthesis.taxonomy import ProsodyProfile, prosody_for

INSTALL_HINT = "install them with `apt-get install espeak-ng sox` (macOS: `brew install espeak-ng sox`)"


class SpeechError(OmniError, RuntimeError):
    """The speech backend is missing or failed; the message says which binary and what to do."""


@dataclass(frozen=True)
class SpeechConfig:
    """Per-utterance jitter around an emotion's profile, and subprocess limits."""

    # Jitter is drawn uniformly in +-value per utterance. It is kept below the gaps between emotion
    # profiles, so emotions stay separable while no two clips of one emotion share exact settings.
    pitch_jitter: int = 6  # espeak pitch units (0..99 scale)
    rate_jitter: float = 0.06  # fraction of the profile's words per minute
    amplitude_jitter: float = 0.08  # fraction of the profile's amplitude
    range_jitter: int = 15  # percentage points of SSML pitch range
    max_seconds: float = 30.0  # refuse longer clips, the same cap decode_wav puts on requests
    tail_s: float = 0.1  # silence kept after the last sound; espeak-ng pads ~0.3 s
    timeout_s: float = 60.0  # per subprocess; espeak-ng takes ~20 ms per sentence


class EspeakSpeech:
    """Synthesizes speech for an emotion and speaker (an espeak-ng voice such as "en-us+f2")."""

    def __init__(self, config: SpeechConfig | None = None):
        self.config = config or SpeechConfig()
        self._espeak = _require_binary("espeak-ng")
        self._sox = _require_binary("sox")

    def synthesize(self, text: str, emotion: str, speaker: str, rng: np.random.Generator | None = None) -> np.ndarray:
        """Speak `text` with `emotion`'s prosody in `speaker`'s voice; returns (T,) float32 at SAMPLE_RATE.

        With an `rng` the prosody is jittered (see SpeechConfig); without one the output is the profile
        exactly, which is what serving wants. Raises ValueError for text with no letters or digits (espeak-ng
        would say nothing) and SpeechError when the backend fails or its audio is unusable.
        """
        if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
            raise ValueError(f"text to speak must contain letters or digits, got {text!r}; skip speech for it")
        profile = prosody_for(emotion)
        if rng is not None:
            profile = self._jitter(profile, rng)
        ssml = f'<speak><prosody range="{profile.pitch_range}%">{escape(text)}</prosody></speak>'
        espeak = [
            self._espeak,
            "-m",
            "--stdin",
            "--stdout",
            "-v",
            speaker,
            "-p",
            str(profile.pitch),
            "-s",
            str(profile.rate),
            "-a",
            str(profile.amplitude),
            "-g",
            str(profile.word_gap),
        ]
        # -R: repeatable (sox seeds its dither with a constant), so the same settings give the same bytes.
        # -V1: errors only; sox warns on every pipe that it cannot fix up the WAV header length.
        sox = [
            self._sox,
            "-R",
            "-V1",
            "-t",
            "wav",
            "-",
            "-t",
            "wav",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-",
            *profile.effects,
        ]
        spoken = self._run(espeak, ssml.encode("ascii", errors="replace"), f"voice {speaker!r}")
        converted = self._run(sox, spoken, f"effects {profile.effects}")
        try:
            wave = decode_wav(converted, max_seconds=self.config.max_seconds)
        except AudioError as err:
            raise SpeechError(
                f"speech for {text[:80]!r} ({emotion}, {speaker}) is unusable: {err}; shorten the text or raise "
                "SpeechConfig.max_seconds"
            ) from None
        return trim_trailing_silence(wave, self.config.tail_s)

    def describe(self) -> str:
        """The backend and its versions for dataset cards, e.g. "eSpeak NG text-to-speech: 1.51 + SoX v14.4.2"."""
        espeak = self._run([self._espeak, "--version"], b"", "--version").decode().split("Data at")[0].strip()
        sox = self._run([self._sox, "--version"], b"", "--version").decode().split(":", 1)[-1].strip()
        return f"{espeak} + {sox}"

    def _jitter(self, profile: ProsodyProfile, rng: np.random.Generator) -> ProsodyProfile:
        c = self.config
        return replace(
            profile,
            pitch=int(np.clip(profile.pitch + rng.integers(-c.pitch_jitter, c.pitch_jitter + 1), 0, 99)),
            # 80 words per minute is espeak-ng's slowest rate; 0..200 its amplitude scale.
            rate=max(80, round(profile.rate * (1 + rng.uniform(-c.rate_jitter, c.rate_jitter)))),
            amplitude=int(
                np.clip(round(profile.amplitude * (1 + rng.uniform(-c.amplitude_jitter, c.amplitude_jitter))), 1, 200)
            ),
            pitch_range=max(0, profile.pitch_range + int(rng.integers(-c.range_jitter, c.range_jitter + 1))),
        )

    def _run(self, command: list[str], stdin: bytes, what: str) -> bytes:
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired:
            raise SpeechError(
                f"{command[0]} ran past {self.config.timeout_s:g} s with {what}; the machine may be overloaded: "
                "lower SynthesisConfig.workers or raise SpeechConfig.timeout_s"
            ) from None
        if result.returncode != 0 or not result.stdout:
            stderr = result.stderr.decode(errors="replace").strip()
            raise SpeechError(
                f"{command[0]} failed (exit {result.returncode}) with {what}: {stderr or 'no output'}; "
                "check the voice exists (`espeak-ng --voices=en`) and the sox effect is valid "
                "(`sox --help-effect all`)"
            )
        return result.stdout


def trim_trailing_silence(wave: np.ndarray, tail_s: float) -> np.ndarray:
    """Cut a synthesizer's end-of-sentence pause (espeak-ng's -z flag is ignored in SSML mode) down to `tail_s`.

    The pause is the same for every emotion, so it only adds length: user turns must stay short.
    """
    loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())  # 1% of peak: -40 dB, below any phoneme
    return wave[: min(len(wave), loud[-1] + 1 + int(tail_s * SAMPLE_RATE))]


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SpeechError(f"`{name}` is not on PATH; speech synthesis needs espeak-ng and sox: {INSTALL_HINT}")
    return path
