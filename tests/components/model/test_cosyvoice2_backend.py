"""The model speaking through a CosyVoice2 token2wav (tiny saved checkpoint): its speech tokens as the units,
a stage-2 loss with the vocoder frozen, and an export that carries the checkpoint so it reloads anywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from components.audio.features import LogMelFrontend
from components.model.configuration import EmotionOmniConfig
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.model.tokenizer import encode_response
from components.speech.backends import COSYVOICE2_DIR, cosyvoice2_config
from components.speech.dataset_units import build_speech_units, load_speech_units
from components.synthesis import read_manifest
from tests.components.speech.test_cosyvoice2 import write_checkpoint
from tests.conftest import TINY_TEXTS, tiny_speech_configs, tiny_thinker_config


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models are all threading overhead (see test_cosyvoice2.py)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("cosyvoice2"))


def test_units_come_from_the_checkpoints_tokenizer(checkpoint, tiny_dialogues, tmp_path):
    summary = build_speech_units(tiny_dialogues, tmp_path, cosyvoice2_config(checkpoint), restyled_per_reply=0)
    speech = load_speech_units(tmp_path)
    assert speech.config.backend == "cosyvoice2" and speech.config.num_units == 6561 and speech.extractor is None
    assert summary.card["backend"] == "cosyvoice2" and summary.card["unit_rate_hz"] == 25
    rows = read_manifest(tiny_dialogues)
    assert set(speech.units) == {r["id"] for r in rows} and speech.restyled == []
    assert all(0 <= u < 6561 for row in speech.units.values() for u in row)


def test_stage_two_loss_export_and_speech(checkpoint, tiny_tokenizer, tmp_path):
    talker, _ = tiny_speech_configs()
    token2wav = cosyvoice2_config(checkpoint)
    config = EmotionOmniConfig(
        tiny_thinker_config(tiny_tokenizer), dataclasses.replace(talker, num_units=6561), token2wav
    )
    torch.manual_seed(0)
    model = EmotionOmniForConditionalGeneration(config)
    assert not model.trains_token2wav and not any(k.startswith("token2wav.") for k in model.state_dict())
    frontend = LogMelFrontend(80, 2.0, 5)
    features, frames = frontend([np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1] * 2)
    replies = [
        torch.tensor(encode_response(tiny_tokenizer, t, config.thinker_config.eos_token_id)) for t in TINY_TEXTS[:2]
    ]
    model.thinker.requires_grad_(False)
    out = model(
        features,
        frames,
        replies,
        speech_units=torch.randint(0, 6561, (2, 12)),
        speech_unit_lengths=torch.tensor([12, 7]),
    )
    assert torch.isfinite(out.loss) and out.mel_loss is None  # the vocoder is frozen: units CE only

    exported = model.save_pretrained(tmp_path / "model")
    assert (exported / COSYVOICE2_DIR / "flow.pt").is_file()  # a registered version is complete by itself
    reloaded = EmotionOmniForConditionalGeneration.from_pretrained(exported)
    assert reloaded.config.token2wav_config.cosyvoice2_path == COSYVOICE2_DIR
    units, audio, _ = reloaded.speak_text(features, frames, replies)
    assert all(len(a) == 640 * len(u) for a, u in zip(audio, units))
    assert all(np.isfinite(a).all() for a in audio) and sum(len(u) for u in units) > 0
