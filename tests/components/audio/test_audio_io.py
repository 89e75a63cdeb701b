"""components.audio.io: round trips, resampling, downmix, and every refusal asserted by its message."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from components.audio import AudioError, decode_wav, encode_wav, load_wav, save_wav
from components.contracts import SAMPLE_RATE


def tone(seconds: float = 0.5, rate: int = SAMPLE_RATE, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(frames: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, frames, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def test_round_trip_keeps_samples_within_16_bit_precision():
    wave = tone()
    decoded = decode_wav(encode_wav(wave))
    assert decoded.dtype == np.float32 and decoded.shape == wave.shape
    assert np.abs(decoded - wave).max() < 2 / 32768


def test_save_and_load_round_trip(tmp_path):
    wave = tone()
    path = save_wav(tmp_path / "nested" / "clip.wav", wave)
    assert sf.info(str(path)).samplerate == SAMPLE_RATE and sf.info(str(path)).subtype == "PCM_16"
    np.testing.assert_allclose(load_wav(path), wave, atol=2 / 32768)


def test_resampling_22050_to_16000_keeps_duration_and_pitch():
    wave = decode_wav(wav_bytes(tone(seconds=1.0, rate=22050, freq=440.0), 22050))
    assert abs(len(wave) - SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(wave) - 440.0) < 2.0


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_decodes_every_sample_format(subtype):
    wave = decode_wav(wav_bytes(tone(), SAMPLE_RATE, subtype))
    np.testing.assert_allclose(wave, tone(), atol=2 / 32768)


def test_stereo_is_downmixed_by_mean():
    left, right = tone(amp=0.6), tone(amp=0.2)
    wave = decode_wav(wav_bytes(np.stack([left, right], axis=1), SAMPLE_RATE))
    np.testing.assert_allclose(wave, (left + right) / 2, atol=2 / 32768)


def test_float_wav_beyond_full_scale_is_clipped():
    wave = decode_wav(wav_bytes(tone(amp=1.5), SAMPLE_RATE, "FLOAT"))
    assert wave.max() <= 1.0 and wave.min() >= -1.0


def test_streaming_header_with_placeholder_size_is_accepted():
    # espeak-ng --stdout and sox to a pipe write ~2 GiB placeholders instead of the real data size.
    data = bytearray(wav_bytes(tone(), SAMPLE_RATE))
    data[4:8] = struct.pack("<I", 0x7FFFF024)
    data[40:44] = struct.pack("<I", 0x7FFFF000)
    assert len(decode_wav(bytes(data))) == len(tone())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"not a wav file at all" * 4, "not a decodable WAV"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a decodable WAV"),
    ],
)
def test_rejects_bad_payloads(payload, message):
    with pytest.raises(AudioError, match=message):
        decode_wav(payload)


def test_rejects_payload_over_max_bytes():
    with pytest.raises(AudioError, match="over the limit of 1000"):
        decode_wav(wav_bytes(tone(), SAMPLE_RATE), max_bytes=1000)


def test_rejects_truncated_data():
    data = wav_bytes(tone(), SAMPLE_RATE)
    with pytest.raises(AudioError, match="truncated.*re-send the whole file"):
        decode_wav(data[: len(data) // 2])


def test_rejects_non_wav_formats():
    with pytest.raises(AudioError, match="FLAC, not WAV; convert"):
        decode_wav(wav_bytes(tone(), SAMPLE_RATE, "PCM_16", "FLAC"))


def test_rejects_zero_samples():
    with pytest.raises(AudioError, match="zero samples"):
        decode_wav(wav_bytes(np.zeros(0, np.float32), SAMPLE_RATE))


def test_rejects_clip_over_max_seconds():
    with pytest.raises(AudioError, match="over the limit of 0.25 s; trim"):
        decode_wav(wav_bytes(tone(seconds=0.5), SAMPLE_RATE), max_seconds=0.25)


def test_rejects_non_finite_samples():
    wave = tone()
    wave[10] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        decode_wav(wav_bytes(wave, SAMPLE_RATE, "FLOAT"))


def test_rejects_digital_silence():
    with pytest.raises(AudioError, match="digital silence.*microphone"):
        decode_wav(wav_bytes(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE))


def test_load_missing_file_names_the_path(tmp_path):
    with pytest.raises(AudioError, match="no WAV file at .*missing.wav"):
        load_wav(tmp_path / "missing.wav")


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / "silent.wav"
    path.write_bytes(wav_bytes(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE))
    with pytest.raises(AudioError, match="silent.wav: audio is digital silence"):
        load_wav(path)


@pytest.mark.parametrize(
    ("wave", "message"),
    [
        ([0.1, 0.2], "numpy array"),
        (np.zeros((10, 2), np.float32), "1-D"),
        (np.zeros(10, np.int16), "float"),
        (np.zeros(0, np.float32), "zero samples"),
        (np.array([0.1, np.inf], np.float32), "NaN or infinite"),
    ],
)
def test_encode_validates_the_wave(wave, message):
    with pytest.raises(AudioError, match=message):
        encode_wav(wave)


def test_encode_validates_the_sample_rate():
    with pytest.raises(AudioError, match="positive int"):
        encode_wav(tone(), sample_rate=0)
