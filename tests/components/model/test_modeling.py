"""The thinker and the whole model on tiny configs: shapes, losses, generation, save/load, pretrained parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.audio.features import LogMelFrontend
from components.export.pretrained import load_pretrained, save_pretrained
from components.model.adapters import FrameStackAdapter, interleave
from components.model.configuration import EmotionOmniConfig, EmotionOmniThinkerConfig
from components.model.heads import emotion_codebook, emotion_loss, nearest_emotion
from components.model.modeling import EmotionOmniForConditionalGeneration
from components.model.thinker import EmotionOmniThinkerForConditionalGeneration
from components.model.tokenizer import encode_response
from tests.conftest import TINY_TEXTS, tiny_thinker_config


@pytest.fixture()
def model_and_batch(tiny_tokenizer):
    torch.manual_seed(0)
    config = tiny_thinker_config(tiny_tokenizer)
    model = EmotionOmniThinkerForConditionalGeneration(config)
    frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(8000).astype(np.float32) * 0.1, rng.standard_normal(30000).astype(np.float32) * 0.1]
    features, frames = frontend(waves)
    replies = [torch.tensor(encode_response(tiny_tokenizer, t, config.eos_token_id)) for t in TINY_TEXTS[:2]]
    return model, features, frames, replies


def test_frontend_window_and_valid_frames(tiny_tokenizer):
    config = tiny_thinker_config(tiny_tokenizer)
    frontend = LogMelFrontend(config.n_mels, config.window_seconds, config.stack_factor)
    features, frames = frontend([np.zeros(8000, np.float32) + 0.01, np.ones(64000, np.float32) * 0.01])
    assert features.shape == (2, 80, 200)  # 2 s window at 100 frames/s
    assert frames.tolist() == [5, 20]  # 0.5 s -> 5 frames at 10 Hz; 4 s is cut to the 2 s window


def test_frame_stack_adapter_and_interleave():
    adapter = FrameStackAdapter(in_dim=4, hidden=8, out_dim=6, stack_factor=5)
    assert adapter(torch.randn(2, 12, 4)).shape == (2, 3, 6)  # 12 frames pad to 15 -> 3 stacked frames
    speech, emotion = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    mixed = interleave(speech, emotion)
    assert mixed[0, :, 0].tolist() == [0, 1, 0, 1, 0, 1]  # even speech, odd emotion
    with pytest.raises(ValueError, match="must match"):
        interleave(speech, torch.ones(1, 4, 2))


def test_codebook_is_orthonormal_and_loss_is_zero_on_target():
    book = emotion_codebook(7, 16)
    assert torch.allclose(book @ book.T, torch.eye(7), atol=1e-5)
    assert emotion_loss(book[:3], book[:3]).item() == pytest.approx(0.0, abs=1e-6)
    assert emotion_loss(-book[:3], book[:3]).item() > 0.8  # opposite direction: cosine term = 0.4 * 2
    assert nearest_emotion(book[[4, 1]] * 3.0, book).tolist() == [4, 1]


def test_forward_losses_and_gradients(model_and_batch):
    model, features, frames, replies = model_and_batch
    out = model(features, frames, replies, torch.tensor([0, 3]), torch.tensor([1, 5]))
    assert out.emotion_vector.shape == (2, model.config.emotion_dim)
    assert out.user_emotion_logits.shape == (2, len(model.config.user_emotions))
    assert torch.isfinite(out.loss)
    expected = out.text_loss + out.emotion_loss + out.user_emotion_loss  # weights default to 1
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    for name in (
        "speech_adapter.proj.0.weight",
        "emotion_adapter.proj.0.weight",
        "emotion_head.mlp.0.weight",
        "user_emotion_classifier.linear.weight",
        "llm.model.layers.0.self_attn.q_proj.weight",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_reply_states_line_up_with_reply_tokens(model_and_batch):
    """The talker reads the LM state and input embedding at each reply token, <|im_end|> excluded."""
    model, features, frames, replies = model_and_batch
    model.eval()
    out = model(features, frames, replies)
    lengths = [len(r) - 1 for r in replies]  # every reply ends with <|im_end|>
    assert out.reply_lengths.tolist() == lengths
    assert out.reply_hidden_states.shape == out.reply_inputs_embeds.shape == (2, max(lengths), 32)
    embed = model.llm.get_input_embeddings()
    for i, reply in enumerate(replies):
        assert torch.allclose(out.reply_inputs_embeds[i, : lengths[i]], embed(reply[:-1]))
        assert out.reply_inputs_embeds[i, lengths[i] :].abs().sum() == 0  # padding is zero


def test_no_labels_means_no_loss(model_and_batch):
    model, features, frames, replies = model_and_batch
    assert model(features, frames, replies).loss is None


def test_loss_falls_when_overfitting_one_batch(model_and_batch):
    model, features, frames, replies = model_and_batch
    labels = (torch.tensor([0, 3]), torch.tensor([1, 5]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(features, frames, replies, *labels).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_generate_batch_matches_single(model_and_batch):
    model, features, frames, _ = model_and_batch
    model.eval()
    batch = model.generate(features, frames, max_new_tokens=6)
    single = model.generate(features[1:], frames[1:], max_new_tokens=6)
    assert batch.token_ids[1] == single.token_ids[0]  # left padding must not change the answer
    assert torch.allclose(batch.emotion_vector[1], single.emotion_vector[0], atol=1e-4)
    assert all(len(ids) <= 6 for ids in batch.token_ids)
    assert 0 <= int(batch.response_emotion[0]) < len(model.config.response_emotions)
    # The talker's inputs come back with the reply: one state and one embedding per generated token.
    assert batch.reply_lengths.tolist() == [len(ids) for ids in batch.token_ids]
    n = len(single.token_ids[0])
    assert torch.allclose(batch.reply_hidden_states[1, :n], single.reply_hidden_states[0, :n], atol=1e-4)


def test_save_load_round_trip(model_and_batch, tiny_tokenizer, tmp_path):
    thinker, features, frames, _ = model_and_batch
    model = EmotionOmniForConditionalGeneration(EmotionOmniConfig(thinker_config=thinker.config)).eval()
    save_pretrained(model, tiny_tokenizer, tmp_path / "m")
    loaded, tokenizer = load_pretrained(tmp_path / "m")
    assert loaded.talker is None and loaded.config.to_dict() == model.config.to_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert tokenizer.get_vocab() == tiny_tokenizer.get_vocab()
    assert loaded.generate(features, frames).thinker.token_ids == model.generate(features, frames).thinker.token_ids
    assert loaded.generate(features, frames).audio is None  # a text-only (stage-1) model says nothing


def test_building_a_model_leaves_its_config_alone(tiny_tokenizer):
    config = EmotionOmniConfig(thinker_config=tiny_thinker_config(tiny_tokenizer))
    before = config.to_dict()
    EmotionOmniForConditionalGeneration(config)
    assert config.to_dict() == before


def test_load_names_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"lacks \['model.safetensors', 'tokenizer.json'\]"):
        load_pretrained(tmp_path)


def test_pretrained_checkpoints_load_from_local_paths(tiny_tokenizer, tmp_path):
    """The real loading code for Whisper / Qwen2 checkpoints, exercised on tiny checkpoints we save."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, WhisperConfig, WhisperModel

    whisper = WhisperModel(
        WhisperConfig(
            num_mel_bins=80,
            d_model=32,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=64,
            max_source_positions=100,
            vocab_size=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=3,
        )
    )
    whisper.save_pretrained(tmp_path / "whisper")
    thinker_config = tiny_thinker_config(tiny_tokenizer)
    text = {
        k: getattr(thinker_config.text_config, k)
        for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    }
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=thinker_config.vocab_size + 12, **text))
    qwen.save_pretrained(tmp_path / "qwen")
    thinker_config = thinker_config.with_pretrained_architectures(str(tmp_path / "whisper"), str(tmp_path / "qwen"))
    assert thinker_config.window_seconds == 2.0 and thinker_config.text_config.vocab_size == qwen.config.vocab_size
    model = EmotionOmniForConditionalGeneration(EmotionOmniConfig(thinker_config=thinker_config))
    model.thinker.load_pretrained_parts(str(tmp_path / "whisper"), str(tmp_path / "qwen"))
    assert torch.equal(model.thinker.speech_encoder.conv1.weight, whisper.encoder.conv1.weight)
    assert torch.equal(model.thinker.llm.lm_head.weight, qwen.lm_head.weight)
    # The exported config describes the architecture, so the export reloads without the checkpoints.
    save_pretrained(model, tiny_tokenizer, tmp_path / "export")
    reloaded, _ = load_pretrained(tmp_path / "export")
    assert reloaded.thinker.llm.config.vocab_size == thinker_config.vocab_size + 12
    assert torch.equal(reloaded.thinker.llm.lm_head.weight, qwen.lm_head.weight)


def test_a_checkpoint_of_another_shape_is_refused(tiny_tokenizer, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=400,
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    ).save_pretrained(tmp_path / "qwen")
    thinker = EmotionOmniThinkerForConditionalGeneration(tiny_thinker_config(tiny_tokenizer))
    with pytest.raises(ValueError, match="with_pretrained_architectures"):
        thinker.load_pretrained_parts(llm_path=str(tmp_path / "qwen"))


def test_config_errors_name_the_fix(tiny_tokenizer):
    with pytest.raises(ValueError, match="apply_tokenizer"):
        EmotionOmniThinkerConfig().validate()
    config = tiny_thinker_config(tiny_tokenizer)
    config.window_seconds = 2.05
    with pytest.raises(ValueError, match="window_seconds"):
        config.validate()
    with pytest.raises(ValueError, match="unknown EmotionOmniThinkerConfig keys"):
        EmotionOmniThinkerConfig.from_dict({"hiden": 3})
    with pytest.raises(ValueError, match="unknown EmotionOmniConfig keys"):
        EmotionOmniConfig.from_dict({"thinker": {}})


def test_config_json_round_trip_and_overrides_stay_tiny(tiny_tokenizer, tmp_path):
    config = EmotionOmniConfig(thinker_config=tiny_thinker_config(tiny_tokenizer))
    config.save(tmp_path / "config.json")
    assert EmotionOmniConfig.load(tmp_path / "config.json").to_dict() == config.to_dict()
    # Overriding one LM key keeps the other tiny defaults, never transformers' 7B-sized ones.
    partial = EmotionOmniThinkerConfig.from_dict({"text_config": {"hidden_size": 64}})
    assert partial.text_config.hidden_size == 64 and partial.text_config.num_hidden_layers == 2


def test_a_speaking_model_round_trips_with_its_voice(tiny_tokenizer, tmp_path):
    """Thinker, talker and token2wav saved together come back identical, and say the same units and audio."""
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    model = EmotionOmniForConditionalGeneration(tiny_config(tiny_tokenizer, speech=True)).eval()
    with torch.no_grad():
        model.token2wav.extractor.centroids.normal_()  # as if fitted: the buffers must travel too
    save_pretrained(model, tiny_tokenizer, tmp_path / "m")
    loaded, _ = load_pretrained(tmp_path / "m")
    assert {k.split(".")[0] for k in loaded.state_dict()} == {"thinker", "talker", "token2wav"}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    features, frames = LogMelFrontend(80, 2.0, 5)([np.random.default_rng(1).standard_normal(12000).astype(np.float32)])
    replies = [torch.tensor(encode_response(tiny_tokenizer, TINY_TEXTS[0], model.config.thinker_config.eos_token_id))]
    units, audio, _ = model.speak_text(features, frames, replies)
    units_again, audio_again, _ = loaded.speak_text(features, frames, replies)
    assert units == units_again and len(units[0]) > 0 and np.array_equal(audio[0], audio_again[0])
