"""The local speech-unit vocoder: mel analysis, Griffin-Lim, k-means units, UnitToMel, streaming chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pystoi import stoi

from components.audio.io import load_wav
from components.contracts import SAMPLE_RATE
from components.speech.config import EmotionOmniToken2WavConfig
from components.speech.mel import GriffinLim, MelConfig, MelSpectrogram
from components.speech.token2wav import EmotionOmniToken2Wav
from components.speech.units import KMeansConfig, fit_unit_extractor
from components.synthesis import read_manifest


@pytest.fixture(scope="module")
def reply_waves(tiny_dialogues):
    rows = read_manifest(tiny_dialogues)
    return [load_wav(tiny_dialogues / r["response_wav"]) for r in rows[:6]]


def test_mel_frames_and_griffin_lim_length():
    config = MelConfig()
    wave = np.sin(2 * np.pi * 220 * np.arange(16000) / SAMPLE_RATE).astype(np.float32)
    mel = MelSpectrogram(config)(wave)
    assert mel.shape == (80, 1 + 16000 // 320)
    audio = GriffinLim(config, n_iter=4)(mel)
    assert audio.shape == (mel.shape[1] * 320,) and torch.isfinite(audio).all()


def test_griffin_lim_brings_speech_back_intelligible(reply_waves):
    """Phase is estimated, not known: STOI against the original stays high (0.92 measured on replies)."""
    mel, vocoder = MelSpectrogram(), GriffinLim()
    wave = reply_waves[0]
    audio = vocoder(mel(wave)).numpy()
    assert stoi(wave, audio[: len(wave)], SAMPLE_RATE) > 0.85


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=g) * 10
    frames = torch.cat([c[:, None] + 0.1 * torch.randn(8, 50, generator=g) for c in centres], dim=1)  # (8, 200)
    mels = [frames[:, i * 40 : (i + 1) * 40] for i in range(5)]  # 8 "mel bins", 1 frame per unit
    extractor = fit_unit_extractor(mels, num_units=4, frames_per_unit=1, config=KMeansConfig(iterations=50))
    units = extractor(frames)
    assert units.shape == (200,)
    for k in range(4):  # each true cluster maps to one unit, and different clusters to different units
        assert len(set(units[k * 50 : (k + 1) * 50].tolist())) == 1
    assert len(set(units.tolist())) == 4
    assert torch.allclose(extractor.centroid_mel(units[:3]), frames[:, :3], atol=0.5)


def test_kmeans_refuses_too_little_audio():
    with pytest.raises(ValueError, match="cannot make 64 units"):
        fit_unit_extractor([torch.randn(80, 20)], num_units=64, frames_per_unit=2)


def tiny_token2wav(reply_waves) -> EmotionOmniToken2Wav:
    config = EmotionOmniToken2WavConfig(num_units=16, hidden_size=32, emotion_dim=16, griffin_lim_iters=4)
    token2wav = EmotionOmniToken2Wav(config)
    extractor = fit_unit_extractor([token2wav.mel(w) for w in reply_waves], 16, 2, KMeansConfig(iterations=30))
    token2wav.extractor.load_state_dict(extractor.state_dict())
    return token2wav.eval()


def test_a_batch_of_utterances_sounds_as_each_does_alone(reply_waves):
    """The served batch's vocoding stage: the padded batch's audio equals one-by-one synthesis (and with a
    trained UnitToMel, whose kernel-3 convolutions would otherwise read the padding past a short item's end)."""
    torch.manual_seed(0)
    token2wav = tiny_token2wav(reply_waves)
    torch.nn.init.normal_(token2wav.unit2mel.out.weight, std=0.1)  # as if trained: the convolutions now matter
    units = [token2wav.extract_units(w)[:n] for w, n in zip(reply_waves, (40, 0, 17, 55))]
    emotion = torch.randn(len(units), 16)
    batched = token2wav.synthesize_batch(units, emotion)
    assert [a.size for a in batched] == [640 * len(u) for u in units]
    for u, e, audio in zip(units, emotion, batched):  # float rounding only (Griffin-Lim amplifies it to ~1e-5)
        assert np.allclose(audio, token2wav.synthesize(u, e), atol=1e-4)


def test_units_to_audio_length_and_starting_point(reply_waves):
    token2wav = tiny_token2wav(reply_waves)
    units = token2wav.extract_units(reply_waves[0])
    assert len(units) == (1 + len(reply_waves[0]) // 320) // 2 and 0 <= min(units) and max(units) < 16
    audio = token2wav.synthesize(units, torch.randn(16))
    assert audio.dtype == np.float32 and audio.shape == (len(units) * 640,) and np.isfinite(audio).all()
    assert np.abs(audio).max() > 1e-3
    # Untrained, UnitToMel returns exactly the centroids' mel: it learns only what k-means lost.
    ids = torch.tensor([units])
    mel = token2wav.units_to_mel(units, None, None)
    assert torch.allclose(mel, token2wav.extractor.centroid_mel(ids)[0], atol=1e-5)
    assert token2wav.synthesize([]).shape == (0,)


def test_streamed_chunks_follow_the_policy_and_add_up(reply_waves):
    token2wav = tiny_token2wav(reply_waves)
    units = token2wav.extract_units(reply_waves[0])[:60]
    arrivals = [units[i : i + 5] for i in range(0, 60, 5)]  # the talker hands over 5 units at a time
    chunks = []
    for chunk in token2wav.stream(iter(arrivals)):
        chunks.append(chunk)
    assert sum(len(c) for c in chunks) == len(token2wav.synthesize(units)) == 60 * 640
    # First audio once 15 units are final (+ 3 of look-ahead): 18 units -> arrives with the 4th hand-over (20).
    assert len(chunks[0]) == (20 - 3 - 1) * 640  # 17 final units, one unit held back for the cross-fade
    assert all(np.isfinite(c).all() for c in chunks)


def test_unknown_speaker_names_the_known_ones(reply_waves):
    token2wav = tiny_token2wav(reply_waves)
    with pytest.raises(ValueError, match="en-us\\+f3"):
        token2wav.synthesize([1, 2, 3], speaker="en-gb+m9")


def test_mel_loss_is_masked_to_each_utterance(reply_waves):
    token2wav = tiny_token2wav(reply_waves)
    units = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    lengths = torch.tensor([4, 2])
    target, _ = token2wav(units, lengths, torch.zeros(2, 16), torch.zeros(2, dtype=torch.long))
    noisy = target.clone()
    noisy[1, :, 4:] += 100.0  # beyond item 1's 2 units: must not count
    _, loss = token2wav(units, lengths, torch.zeros(2, 16), torch.zeros(2, dtype=torch.long), noisy)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
