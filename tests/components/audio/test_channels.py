"""Channel augmentation: seeded, recorded, and each effect does to the signal what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from components.audio.channels import (
    EFFECTS,
    ChannelConfig,
    ChannelError,
    apply_channel,
    channel_from_json,
    channel_to_json,
    describe_channel,
    sample_channel,
)
from components.contracts import SAMPLE_RATE


def tone(hz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_a_channel_is_seeded_recorded_and_remade_from_its_record():
    draws = [sample_channel(np.random.default_rng([3, i])) for i in range(40)]
    assert draws == [sample_channel(np.random.default_rng([3, i])) for i in range(40)]
    assert [] in draws and any(len(d) > 1 for d in draws)  # some clean clips, some chains
    assert {e["effect"] for d in draws for e in d} == set(EFFECTS)
    for effects in draws:  # signal order: room, device, line
        assert [EFFECTS.index(e["effect"]) for e in effects] == sorted(EFFECTS.index(e["effect"]) for e in effects)
    speech = tone(300) * np.hanning(SAMPLE_RATE).astype(np.float32)
    chain = next(d for d in draws if any(e["effect"] == "noise" for e in d))
    record = channel_to_json(chain)
    again = apply_channel(speech, channel_from_json(record))
    assert np.array_equal(apply_channel(speech, chain), again)  # the record alone remakes the clip
    assert channel_to_json([]) == "" and channel_from_json("") == [] and describe_channel([]) == "clean"
    assert (
        describe_channel([{"effect": "telephone"}, {"effect": "noise", "color": "pink", "snr_db": 10.0, "seed": 1}])
        == "telephone+noise(pink,10dB)"
    )


def test_every_effect_keeps_the_length_and_full_scale():
    speech = tone(440)
    rng = np.random.default_rng(0)
    for name in EFFECTS:
        effects = next(
            d
            for d in (sample_channel(rng, ChannelConfig(clean_prob=0.0, max_effects=1)) for _ in range(500))
            if d[0]["effect"] == name
        )
        out = apply_channel(speech, effects)
        assert out.shape == speech.shape and out.dtype == np.float32 and np.abs(out).max() <= 1.0, name


@pytest.mark.parametrize("snr_db", [5.0, 20.0])
def test_noise_lands_at_the_signal_to_noise_ratio_asked(snr_db):
    speech = tone(220)
    noisy = apply_channel(speech, [{"effect": "noise", "color": "pink", "snr_db": snr_db, "seed": 4}])
    measured = 20 * np.log10(rms(speech) / rms(noisy - speech))
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_level_clip_and_band_limits_do_what_they_say():
    speech = tone(1000)
    quieter = apply_channel(speech, [{"effect": "level", "gain_db": -20.0}])
    assert rms(quieter) == pytest.approx(rms(speech) / 10, rel=1e-3)
    clipped = apply_channel(speech, [{"effect": "clip", "gain": 5.0}])
    assert np.abs(clipped).max() == 1.0 and np.mean(np.abs(clipped) == 1.0) > 0.5  # a flat-topped wave
    phone = [{"effect": "telephone"}]
    assert rms(apply_channel(tone(1000), phone)) > 0.8 * rms(tone(1000))  # in the band: kept
    assert rms(apply_channel(tone(120), phone)) < 0.1 * rms(tone(120))  # mains hum: gone
    assert rms(apply_channel(tone(3900), phone)) < 0.1 * rms(tone(3900))  # above 3.4 kHz: gone
    low_rate = [{"effect": "resample", "rate": 8000}]
    assert rms(apply_channel(tone(5000), low_rate)) < 0.05 * rms(tone(5000))  # above its Nyquist: gone
    assert rms(apply_channel(tone(1000), low_rate)) > 0.9 * rms(tone(1000))


def test_a_room_leaves_sound_after_the_speaker_stops():
    burst = np.concatenate([tone(500, 0.3), np.zeros(SAMPLE_RATE // 2, dtype=np.float32)])
    room = apply_channel(burst, [{"effect": "reverb", "reverberance": 80, "room_scale": 80}])
    tail = slice(int(0.35 * SAMPLE_RATE), int(0.5 * SAMPLE_RATE))
    assert rms(room[tail]) > 100 * rms(burst[tail]) + 1e-4


@pytest.mark.parametrize("codec", ["amr-nb", "gsm"])
def test_a_codec_round_trip_keeps_speech_but_not_every_sample(codec):
    speech = tone(440) * np.hanning(SAMPLE_RATE).astype(np.float32)
    coded = apply_channel(speech, [{"effect": "codec", "codec": codec}])
    assert not np.allclose(coded, speech, atol=1e-3)  # lossy (and delayed by its frames)
    spectrum = np.abs(np.fft.rfft(coded))  # yet the same sound, as loud
    assert np.argmax(spectrum) * SAMPLE_RATE / len(coded) == pytest.approx(440, abs=3)
    assert 0.5 < rms(coded) / rms(speech) < 2.0


def test_bad_records_and_settings_are_refused():
    with pytest.raises(ChannelError, match="not a channel"):
        channel_from_json('[{"effect": "flanger"}]')
    with pytest.raises(ChannelError, match="codec 'mp3'"):
        apply_channel(tone(440), [{"effect": "codec", "codec": "mp3"}])
    with pytest.raises(ValueError, match="clean_prob"):
        sample_channel(np.random.default_rng(0), ChannelConfig(clean_prob=1.5))
    with pytest.raises(ValueError, match="snr_db"):
        sample_channel(np.random.default_rng(0), ChannelConfig(snr_db=(20.0, 5.0)))
