"""WAV bytes <-> float32 mono waveforms at SAMPLE_RATE, with every bad input refused at the boundary.

Training, evaluation, the Triton model and the CLI all read audio through `decode_wav`/`load_wav`, so a
clip that one of them accepts is a clip all of them accept. Any rate, channel count and 16/24/32-bit int
or float WAV goes in; mono float32 in [-1, 1] at SAMPLE_RATE comes out.

    wave = load_wav("wavs/000001_user.wav")     # (T,) float32, 16 kHz
    data = encode_wav(wave)                     # 16-bit PCM WAV bytes
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from components.contracts import MAX_AUDIO_BYTES, SAMPLE_RATE
from components.errors import OmniError

# Peak below which a clip counts as digital silence: about 3 LSB of 16-bit audio, above the dither a
# muted microphone produces and far below any speech.
SILENCE_PEAK = 1e-4

# libsndfile's names for the RIFF/WAVE family; anything else (FLAC, OGG, AIFF) is refused.
_WAV_FORMATS = frozenset({"WAV", "WAVEX", "RF64"})


class AudioError(OmniError, ValueError):
    """Bad audio input. The message names the problem and how to fix it."""


def decode_wav(data: bytes, *, max_bytes: int = MAX_AUDIO_BYTES, max_seconds: float = 30.0) -> np.ndarray:
    """Decode WAV bytes to a float32 mono waveform at SAMPLE_RATE with samples in [-1, 1].

    Channels are averaged; other rates are resampled with a polyphase filter. Raises AudioError for an
    empty or oversized payload, bytes that are not a complete WAV file, zero samples, a clip longer than
    `max_seconds`, non-finite samples, and digital silence.
    """
    if not data:
        raise AudioError("audio payload is empty (0 bytes); send the bytes of a WAV file")
    if len(data) > max_bytes:
        raise AudioError(
            f"audio payload is {len(data)} bytes, over the limit of {max_bytes}; send at most "
            f"{max_seconds:g} s of audio, e.g. as 16 kHz mono 16-bit WAV"
        )
    frames, rate = _read_frames(data, max_bytes)  # (T, C)
    if frames.shape[0] == 0:
        raise AudioError("WAV file holds zero samples; record or send a clip with audio in it")
    seconds = frames.shape[0] / rate
    if seconds > max_seconds:
        raise AudioError(
            f"audio is {seconds:.1f} s long, over the limit of {max_seconds:g} s; trim it "
            f"(e.g. `sox in.wav out.wav trim 0 {max_seconds:g}`) or split it into shorter clips"
        )
    if not np.isfinite(frames).all():
        raise AudioError("WAV file contains NaN or infinite samples; re-export it as 16-bit PCM")
    wave = frames.mean(axis=1)  # (T,) downmix: averaging keeps the level of a dual-mono recording
    if np.abs(wave).max() < SILENCE_PEAK:
        raise AudioError(
            "audio is digital silence (every sample is ~0); check that the microphone is not muted "
            "and that the right input device is recording"
        )
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly  # ~1 s to import: every rank and step process loads this module

        step = math.gcd(rate, SAMPLE_RATE)
        wave = resample_poly(wave, SAMPLE_RATE // step, rate // step)
    # Float WAVs may exceed full scale and the resampling filter can overshoot; both would wrap in int16.
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def load_wav(path: str | Path, *, max_bytes: int = MAX_AUDIO_BYTES, max_seconds: float = 30.0) -> np.ndarray:
    """Read a WAV file with the same checks as `decode_wav`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"no WAV file at {path}; check the path (relative paths resolve against {Path.cwd()})")
    try:
        return decode_wav(path.read_bytes(), max_bytes=max_bytes, max_seconds=max_seconds)
    except AudioError as err:
        raise AudioError(f"{path}: {err}") from None


def encode_wav(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode a 1-D float waveform in [-1, 1] as 16-bit PCM WAV bytes; samples outside are clipped."""
    if not isinstance(wave, np.ndarray):
        raise AudioError(f"wave must be a numpy array, got {type(wave).__name__}; wrap it with np.asarray(...)")
    if wave.ndim != 1:
        raise AudioError(f"wave must be 1-D (mono), got shape {wave.shape}; downmix first, e.g. wave.mean(axis=1)")
    if not np.issubdtype(wave.dtype, np.floating):
        raise AudioError(
            f"wave must be float in [-1, 1], got dtype {wave.dtype}; for int16 use wave.astype(np.float32) / 32768"
        )
    if wave.size == 0:
        raise AudioError("wave has zero samples; there is nothing to encode")
    if not np.isfinite(wave).all():
        raise AudioError("wave contains NaN or infinite samples; fix the code that produced it")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise AudioError(f"sample_rate must be a positive int, got {sample_rate!r}; use SAMPLE_RATE ({SAMPLE_RATE})")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class WavStreamWriter:
    """A 16-bit PCM WAV file written piece by piece as audio arrives (a streamed reply); complete once closed."""

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, format="WAV", subtype="PCM_16")

    def write(self, samples: np.ndarray) -> None:
        """Append float samples in [-1, 1] (clipped, as encode_wav does)."""
        self._file.write(np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# sox's output arguments for raw 16-bit mono PCM at SAMPLE_RATE on stdout: a WAV written to a pipe has no length
# in its header, raw PCM needs none. decode_pcm16 reads it back.
SOX_RAW_PCM16 = ("-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed-integer", "-b", "16", "-c", "1", "-")


def decode_pcm16(raw: bytes) -> np.ndarray:
    """Raw little-endian 16-bit mono PCM -> (T,) float32 in [-1, 1)."""
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def save_wav(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write `wave` as a 16-bit PCM WAV file, creating parent directories; returns the path."""
    path = Path(path)
    data = encode_wav(wave, sample_rate)  # validate before touching the filesystem
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _read_frames(data: bytes, max_bytes: int) -> tuple[np.ndarray, int]:
    """Parse WAV bytes into (frames (T, C) float32, sample rate), refusing anything incomplete."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as file:
            if file.format not in _WAV_FORMATS:
                raise AudioError(
                    f"audio is {file.format}, not WAV; convert it first, e.g. `sox in.{file.format.lower()} out.wav`"
                )
            frames = file.read(dtype="float32", always_2d=True)
            rate = file.samplerate
    except sf.LibsndfileError as err:
        raise AudioError(
            f"bytes are not a decodable WAV file ({err.error_string}); send a complete RIFF/WAVE file"
        ) from None
    missing = _missing_data_bytes(data, max_bytes)
    if missing:
        raise AudioError(
            f"WAV file is truncated: its header promises {missing} more bytes of samples than it holds; "
            "re-send the whole file"
        )
    return frames, rate


def _missing_data_bytes(data: bytes, max_bytes: int) -> int:
    """Bytes the RIFF 'data' chunk declares beyond the end of the payload (0 when complete).

    libsndfile silently decodes a cut-off file up to where it stops, so the check is ours. Streaming
    writers (espeak-ng --stdout, sox to a pipe) cannot seek back to fill in the size and declare a
    placeholder near 2 or 4 GiB; a declared size over `max_bytes` is such a placeholder, not truncation.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0  # RF64 keeps its sizes elsewhere; libsndfile validated it
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if chunk_id == b"data":
            available = len(data) - pos - 8
            return size - available if available < size <= max_bytes else 0
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    return 0
