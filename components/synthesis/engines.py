"""Several TTS engines behind one interface, and emotion applied the same way to all of them.

A model trained on one synthesizer learns that synthesizer. Debian ships three engines with different voices
and different habits: espeak-ng (formant synthesis, many voice variants), flite (CMU's diphone and clustergen
voices) and festival (its kal diphone voice). Each speaks the text neutrally in one of its voices; the emotion
is then an engine-independent transform with sox: a pitch shift, a tempo change, a gain and a spectral tilt
derived from the emotion's profile (taxonomy.PROSODY), then the emotion's own sox effects (tremolo for fear,
overdrive for anger, low-pass for sadness). So every engine can speak every emotion.

    tts = EngineSpeech()
    wave = tts.synthesize("My flight got cancelled!", "angry", "flite:slt", np.random.default_rng(0))

Speakers are "<engine>:<voice>" (taxonomy.ENGINE_VOICES lists them). Pitch range (intonation width) is not part of the
transform: it needs per-syllable pitch control, which only espeak-ng's SSML offers (speech.EspeakSpeech).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from components.audio.formants import warp_formants
from components.audio.io import SOX_RAW_PCM16, decode_pcm16
from components.contracts import SAMPLE_RATE
from components.synthesis.speech import SpeechError, trim_trailing_silence
from components.synthesis.taxonomy import ENGINE_VOICES, INTONATION, PROSODY, prosody_for

# The binary each engine runs and the Debian package that carries it.
_BINARIES = {
    "espeak-ng": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("text2wave", "festival"),
}
_NEUTRAL = PROSODY["neutral"]


@dataclass(frozen=True)
class EmotionTransform:
    """What an emotion does to neutral speech, for any engine."""

    semitones: float = 0.0  # pitch shift
    tempo: float = 1.0  # speaking-rate factor (pitch kept)
    gain_db: float = 0.0  # loudness
    tilt_db: float = 0.0  # treble shelf: aroused voices are brighter, subdued ones duller
    effects: tuple[str, ...] = ()
    # Pitch movements over the spoken part, (start, end, cents) with start and end as fractions of it.
    intonation: tuple[tuple[float, float, int], ...] = ()
    # Vocal-tract length: formants scaled by this factor, pitch and tempo kept (a speaker trait, not an emotion;
    # components/audio/formants.py, after the sox chain).
    formant_warp: float = 1.0

    @classmethod
    def for_emotion(cls, emotion: str) -> EmotionTransform:
        """From the emotion's espeak-ng profile, relative to neutral: 5 pitch units a semitone, words per
        minute as a tempo ratio, amplitude as a gain, and the same dB of tilt as of gain."""
        p = prosody_for(emotion)
        gain = 20 * math.log10(p.amplitude / _NEUTRAL.amplitude)
        return cls(
            semitones=(p.pitch - _NEUTRAL.pitch) / 5,
            tempo=p.rate / _NEUTRAL.rate,
            gain_db=gain,
            tilt_db=gain,
            effects=p.effects,
            intonation=INTONATION.get(emotion, ()),
        )

    def sox_effects(self, speech_start_s: float = 0.0, speech_end_s: float = 0.0) -> list[str]:
        """The sox chain for a neutral clip whose speech runs from `speech_start_s` to `speech_end_s`; the
        intonation is bent first, at those times, before the tempo change moves them."""
        bends, cursor = [], 0.0
        span = speech_end_s - speech_start_s
        for start, end, cents in self.intonation if span > 0 else ():
            at = speech_start_s + start * span
            bends.append(f"{at - cursor:.3f},{cents},{(end - start) * span:.3f}")  # delay after the last bend
            cursor = speech_start_s + end * span
        # -o 4: a quarter of sox's default oversampling, 0.09 -> 0.02 s a turn; the contour comes out the same.
        return [
            *(["bend", "-o", "4", *bends] if bends else []),
            "pitch",
            f"{self.semitones * 100:.0f}",
            "tempo",
            "-s",
            f"{self.tempo:.3f}",
            "treble",
            f"{self.tilt_db:.1f}",
            "gain",
            f"{self.gain_db:.1f}",
            *self.effects,
        ]


@dataclass(frozen=True)
class EngineSpeechConfig:
    """Speaker randomisation: with an rng, every utterance gets its own virtual speaker, drawn uniformly in
    +-value around the voice: its pitch, vocal-tract length, speaking rate and level. The ranges stay below the
    gaps between emotions (the smallest pitch step, neutral to angry, is 1.6 semitones; speaking rate differs by
    at least 15 % between aroused and subdued emotions) so the emotion still decides the sound."""

    semitone_jitter: float = 1.0
    formant_jitter: float = 0.08  # +-8 % vocal-tract length, about the spread between adult speakers of one sex
    tempo_jitter: float = 0.06
    gain_jitter_db: float = 2.0
    tail_s: float = 0.1  # silence kept after the last sound
    timeout_s: float = 60.0


class EngineSpeech:
    """Speaks text with an emotion in any engine's voice ("<engine>:<voice>"); the same call as EspeakSpeech."""

    def __init__(self, config: EngineSpeechConfig | None = None, engines: tuple[str, ...] = tuple(ENGINE_VOICES)):
        self.config = config or EngineSpeechConfig()
        unknown = [e for e in engines if e not in ENGINE_VOICES]
        if unknown:
            raise ValueError(f"unknown TTS engines {unknown}: use some of {list(ENGINE_VOICES)}")
        self._binaries = {engine: _require(engine) for engine in engines}
        self._sox = _require_sox()

    def describe(self) -> dict[str, str]:
        """Each engine's version line for the dataset card, e.g. {"flite": "flite-2.2-current Sep 2018 ...", ...}."""
        versions = {}
        for engine, binary in self._binaries.items():
            # festival's text2wave has no --version; flite prints its version but exits 1.
            command = [shutil.which("festival") or binary if engine == "festival" else binary, "--version"]
            result = subprocess.run(command, capture_output=True, timeout=self.config.timeout_s)
            lines = (result.stdout + result.stderr).decode(errors="replace").splitlines()
            line = next((ln for ln in lines if "version" in ln.lower() or ":" in ln), lines[0] if lines else "")
            versions[engine] = line.split("Data at")[0].replace("version:", "").strip() or "unknown"
        return versions

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(f"{engine}:{voice}" for engine in self._binaries for voice in ENGINE_VOICES[engine])

    def synthesize(self, text: str, emotion: str, speaker: str, rng: np.random.Generator | None = None) -> np.ndarray:
        """(T,) float32 at SAMPLE_RATE: `text` in `speaker`'s voice, then `emotion`'s transform (jittered by
        `rng` when given). Raises ValueError for an unknown speaker or text with nothing to say."""
        if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
            raise ValueError(f"text to speak must contain letters or digits, got {text!r}; skip speech for it")
        engine, _, voice = speaker.partition(":")
        if engine not in self._binaries or voice not in ENGINE_VOICES[engine]:
            raise ValueError(f"speaker {speaker!r} is not one of {list(self.speakers)}")
        transform = EmotionTransform.for_emotion(emotion)
        if rng is not None:
            c = self.config
            transform = replace(
                transform,
                semitones=transform.semitones + rng.uniform(-c.semitone_jitter, c.semitone_jitter),
                tempo=transform.tempo * (1 + rng.uniform(-c.tempo_jitter, c.tempo_jitter)),
                gain_db=transform.gain_db + rng.uniform(-c.gain_jitter_db, c.gain_jitter_db),
                formant_warp=1 + rng.uniform(-c.formant_jitter, c.formant_jitter),
            )
        with tempfile.TemporaryDirectory(prefix="omni-tts-") as tmp:
            neutral = Path(tmp) / "neutral.wav"
            self._speak_neutral(engine, voice, text, neutral)
            # Every engine's output at the one sample rate first: flite's kal speaks at 8 kHz.
            raw = self._run(
                [
                    self._sox,
                    "-R",
                    "-V1",
                    str(neutral),
                    *SOX_RAW_PCM16,
                    "rate",
                    str(SAMPLE_RATE),
                    *transform.sox_effects(*_speech_extent(neutral)),
                ],
                b"",
                f"the {emotion} transform",
            )
        wave = decode_pcm16(raw)
        if not np.abs(wave).max() > 0:
            raise SpeechError(f"{engine} said nothing for {text[:80]!r} in voice {voice!r}")
        wave = np.clip(warp_formants(wave, transform.formant_warp), -1.0, 1.0)
        return trim_trailing_silence(wave, self.config.tail_s)

    def _speak_neutral(self, engine: str, voice: str, text: str, out: Path) -> None:
        binary = self._binaries[engine]
        if engine == "espeak-ng":
            self._run([binary, "-v", voice, "-w", str(out), text], b"", f"voice {voice!r}")
        elif engine == "flite":
            self._run([binary, "-voice", voice, "-t", text, "-o", str(out)], b"", f"voice {voice!r}")
        else:  # festival's text2wave reads the text from stdin
            self._run(
                [binary, "-eval", f"(voice_{voice})", "-o", str(out)],
                text.encode("ascii", "replace"),
                f"voice {voice!r}",
            )
        if not out.is_file() or out.stat().st_size <= 44:
            raise SpeechError(f"{engine} wrote no audio for voice {voice!r}; check `{binary}` works on its own")

    def _run(self, command: list[str], stdin: bytes, what: str) -> bytes:
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired:
            raise SpeechError(f"{command[0]} ran past {self.config.timeout_s:g} s with {what}") from None
        if result.returncode != 0:
            raise SpeechError(
                f"{command[0]} failed (exit {result.returncode}) with {what}: "
                f"{result.stderr.decode(errors='replace').strip() or 'no output'}"
            )
        return result.stdout


def _speech_extent(path: Path) -> tuple[float, float]:
    """Seconds from the start of `path` to its first and last sound (1 % of peak): engines pad with silence."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    loud = np.flatnonzero(np.abs(wave[:, 0]) > 0.01 * np.abs(wave).max()) if wave.size else []
    return (loud[0] / rate, (loud[-1] + 1) / rate) if len(loud) else (0.0, 0.0)


def _require(engine: str) -> str:
    binary, package = _BINARIES[engine]
    path = shutil.which(binary)
    if path is None:
        raise SpeechError(
            f"TTS engine {engine}: `{binary}` is not on PATH; install it with "
            f"`apt-get install {package}` (make setup does)"
        )
    return path


def _require_sox() -> str:
    path = shutil.which("sox")
    if path is None:
        raise SpeechError("`sox` is not on PATH; the emotion transform needs it: apt-get install sox")
    return path
