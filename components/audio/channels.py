"""Channel augmentation: what a phone line, a codec, a room or a cheap microphone does to a spoken turn.

Real users reach the model through telephones, laptops and rooms; a model that heard only clean synthesizer
output learns the synthesizer. A channel is a short chain of effects, drawn from a seeded rng and written down
as plain data, so every augmented clip says exactly how it was made and can be made again:

    effects = sample_channel(np.random.default_rng(7), ChannelConfig())
    # e.g. [{"effect": "reverb", "reverberance": 62, "room_scale": 41}, {"effect": "noise", "snr_db": 10.0,
    #        "color": "pink", "seed": 1834}, {"effect": "codec", "codec": "amr-nb"}]
    degraded = apply_channel(wave, effects)      # (T,) float32 16 kHz in and out
    describe_channel(effects)                    # "reverb(62,41)+noise(pink,10dB)+codec(amr-nb)"

Effects, in the order a signal meets them (room, then the device, then the line): `reverb` (sox), `noise`
(white, pink or brown, at an SNR against the speech's power), `level` (gain), `clip` (an overdriven input),
`resample` (a low-rate device), `telephone` (the 300-3400 Hz band at 8 kHz) and `codec` (a lossy round trip
through sox's AMR-NB or GSM 06.10, the codecs of mobile and older phone lines). Each keeps the clip's length.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from components.audio.io import SOX_RAW_PCM16, decode_pcm16, encode_wav
from components.contracts import SAMPLE_RATE
from components.errors import ConfigError, OmniError

EFFECTS = ("reverb", "noise", "level", "clip", "resample", "telephone", "codec")
NOISE_COLORS = ("white", "pink", "brown")
CODECS = ("amr-nb", "gsm")  # both need 8 kHz mono; Debian's sox (libsox3) reads and writes them


class ChannelError(OmniError, RuntimeError):
    """An effect could not run (sox missing or failing) or a recorded channel is malformed; the message says which."""


@dataclass(frozen=True)
class ChannelConfig:
    """How often and how hard user turns are degraded. Ranges are drawn uniformly per clip."""

    # Measured on the demo's 300 dialogues (2026-11-29) with a logistic-regression probe trained on them: clean
    # held-out turns 0.88, clipped ones 0.42. Clipping at 2-6x gain is overdrive, which is how anger sounds here,
    # so it taught "angry"; real hot microphones clip gently. Hence gentler clipping, no +6 dB level, and at most
    # two effects a turn.
    clean_prob: float = 0.4  # some turns stay as the synthesizer made them
    max_effects: int = 2  # 1..max_effects effects per degraded clip
    snr_db: tuple[float, float] = (8.0, 30.0)  # additive noise, against the speech's mean power
    level_db: tuple[float, float] = (-18.0, 3.0)  # a quiet or hot microphone (peaks above 1 are clipped)
    clip_gain: tuple[float, float] = (1.2, 2.5)  # overdrive before clipping at full scale
    reverberance: tuple[int, int] = (20, 80)  # sox reverb's 0-100 scales
    room_scale: tuple[int, int] = (20, 80)
    resample_rates: tuple[int, ...] = (8000, 11025)

    def validate(self) -> None:
        if not 0.0 <= self.clean_prob <= 1.0:
            raise ConfigError(f"ChannelConfig.clean_prob={self.clean_prob}: a probability in [0, 1]")
        if not 1 <= self.max_effects <= len(EFFECTS):
            raise ConfigError(f"ChannelConfig.max_effects={self.max_effects}: between 1 and {len(EFFECTS)}")
        for name in ("snr_db", "level_db", "clip_gain", "reverberance", "room_scale"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"ChannelConfig.{name}={(low, high)}: give (low, high) with low <= high")


def sample_channel(rng: np.random.Generator, config: ChannelConfig = ChannelConfig()) -> list[dict]:
    """A channel drawn from `rng`: [] (clean) with probability clean_prob, else 1..max_effects distinct effects in
    signal order, each with its parameters (noise carries its own seed, so the record alone remakes the clip)."""
    config.validate()
    if rng.random() < config.clean_prob:
        return []
    count = int(rng.integers(1, config.max_effects + 1))
    chosen = sorted(rng.choice(len(EFFECTS), size=count, replace=False).tolist())
    return [_draw(EFFECTS[i], rng, config) for i in chosen]


def _draw(name: str, rng: np.random.Generator, c: ChannelConfig) -> dict:
    if name == "reverb":
        return {
            "effect": name,
            "reverberance": int(rng.integers(c.reverberance[0], c.reverberance[1] + 1)),
            "room_scale": int(rng.integers(c.room_scale[0], c.room_scale[1] + 1)),
        }
    if name == "noise":
        return {
            "effect": name,
            "snr_db": round(float(rng.uniform(*c.snr_db)), 1),
            "color": NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))],
            "seed": int(rng.integers(2**31)),
        }
    if name == "level":
        return {"effect": name, "gain_db": round(float(rng.uniform(*c.level_db)), 1)}
    if name == "clip":
        return {"effect": name, "gain": round(float(rng.uniform(*c.clip_gain)), 2)}
    if name == "resample":
        return {"effect": name, "rate": int(c.resample_rates[int(rng.integers(len(c.resample_rates)))])}
    if name == "codec":
        return {"effect": name, "codec": CODECS[int(rng.integers(len(CODECS)))]}
    return {"effect": name}  # telephone


def apply_channel(wave: np.ndarray, effects: list[dict]) -> np.ndarray:
    """`wave` (T,) float32 at SAMPLE_RATE through `effects` in order -> (T,) float32, peaks within [-1, 1]."""
    out = np.asarray(wave, dtype=np.float32)
    for effect in effects:
        out = _apply(out, effect)
        out = np.clip(out, -1.0, 1.0).astype(np.float32)
    return out


def describe_channel(effects: list[dict]) -> str:
    """A short human-readable form, e.g. "telephone+noise(pink,10dB)"; "clean" for no effects."""
    if not effects:
        return "clean"
    parts = []
    for e in effects:
        name = e["effect"]
        # Each lambda runs at once on this effect; lambdas keep the keys other effects lack from being read.
        detail = {
            "reverb": lambda e=e: f"{e['reverberance']},{e['room_scale']}",
            "noise": lambda e=e: f"{e['color']},{e['snr_db']:g}dB",
            "level": lambda e=e: f"{e['gain_db']:+g}dB",
            "clip": lambda e=e: f"x{e['gain']:g}",
            "resample": lambda e=e: f"{e['rate']}Hz",
            "codec": lambda e=e: e["codec"],
            "telephone": lambda e=e: "",
        }[name]()
        parts.append(f"{name}({detail})" if detail else name)
    return "+".join(parts)


def channel_to_json(effects: list[dict]) -> str:
    """The manifest's form: compact JSON, "" for a clean clip."""
    return json.dumps(effects, separators=(",", ":"), sort_keys=True) if effects else ""


def channel_from_json(text: str) -> list[dict]:
    """Back from the manifest's form; refuses anything apply_channel could not run."""
    effects = json.loads(text) if text else []
    if not isinstance(effects, list) or any(not isinstance(e, dict) or e.get("effect") not in EFFECTS for e in effects):
        raise ChannelError(f"{text[:120]!r} is not a channel: expected a JSON list of effects named in {EFFECTS}")
    return effects


# --- the effects -------------------------------------------------------------------------------------------------
def _apply(wave: np.ndarray, e: dict) -> np.ndarray:
    name = e["effect"]
    if name == "noise":
        return wave + _noise(len(wave), e["color"], e["seed"]) * _noise_scale(wave, e["snr_db"])
    if name == "level":
        return wave * np.float32(10 ** (e["gain_db"] / 20))
    if name == "clip":
        return wave * np.float32(e["gain"])  # apply_channel clips at full scale
    if name == "reverb":
        return _sox(wave, ["reverb", str(e["reverberance"]), "50", str(e["room_scale"])])
    if name == "resample":
        return _sox(wave, ["rate", str(e["rate"]), "rate", str(SAMPLE_RATE)])
    if name == "telephone":
        return _sox(wave, ["rate", "8000", "sinc", "300-3400", "rate", str(SAMPLE_RATE)])
    if name == "codec":
        if e["codec"] not in CODECS:
            raise ChannelError(f"codec {e['codec']!r}: use one of {CODECS}")
        coded = _run(
            [_sox_binary(), "-R", "-V1", "-t", "wav", "-", "-t", e["codec"], "-r", "8000", "-c", "1", "-"],
            encode_wav(wave),
            f"encoding {e['codec']}",
        )
        decoded = _run(
            [_sox_binary(), "-R", "-V1", "-t", e["codec"], "-", *SOX_RAW_PCM16], coded, f"decoding {e['codec']}"
        )
        return _fit(decode_pcm16(decoded), len(wave))
    raise ChannelError(f"unknown effect {name!r}: use one of {EFFECTS}")


def _noise(length: int, color: str, seed: int) -> np.ndarray:
    """Unit-power noise: white, pink (1/f power) or brown (1/f^2), shaped in the frequency domain."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(length)
    if color != "white":
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
        f[0] = f[1] if length > 1 else 1.0
        spectrum /= np.sqrt(f) if color == "pink" else f
        white = np.fft.irfft(spectrum, n=length)
    return (white / (np.sqrt(np.mean(white**2)) + 1e-12)).astype(np.float32)


def _noise_scale(wave: np.ndarray, snr_db: float) -> np.float32:
    """Noise amplitude for `snr_db` against the power of the clip's speech (its samples above -40 dB of peak)."""
    loud = np.abs(wave) > 0.01 * (np.abs(wave).max() + 1e-12)
    power = float(np.mean(wave[loud] ** 2)) if loud.any() else 0.0
    return np.float32(np.sqrt(power / 10 ** (snr_db / 10)))


def _sox(wave: np.ndarray, effects: list[str]) -> np.ndarray:
    raw = _run(
        [_sox_binary(), "-R", "-V1", "-t", "wav", "-", *SOX_RAW_PCM16, *effects], encode_wav(wave), " ".join(effects)
    )
    return _fit(decode_pcm16(raw), len(wave))


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    """The effect's output cut or zero-padded to the input's length (resampling filters shift it by a few samples)."""
    return np.pad(wave[:length], (0, max(0, length - len(wave))))


def _sox_binary() -> str:
    path = shutil.which("sox")
    if path is None:
        raise ChannelError("`sox` is not on PATH; channel effects need it: apt-get install sox")
    return path


def _run(command: list[str], stdin: bytes, what: str) -> bytes:
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=60)
    if result.returncode != 0 or not result.stdout:
        raise ChannelError(
            f"sox failed (exit {result.returncode}) {what}: "
            f"{result.stderr.decode(errors='replace').strip() or 'no output'}; "
            "check `sox -h` lists the format (amr-nb and gsm come with Debian's libsox3)"
        )
    return result.stdout
