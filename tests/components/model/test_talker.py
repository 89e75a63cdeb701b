"""The talker (stage-2 speech generator) on tiny configs, in the transformers test style: shapes, masks, the
fusion and AdaLN at initialisation, multi-token prediction, one-batch overfit, cached generation, save/load."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from components.model.fusion import AdaptiveLayerNorm, GatedFusion
from components.model.talker import EmotionOmniTalkerForConditionalGeneration
from components.model.talker_masks import talker_attention_mask
from tests.conftest import tiny_speech_configs

H, E = 32, 16


def make_talker(**overrides) -> EmotionOmniTalkerForConditionalGeneration:
    torch.manual_seed(0)
    config, _ = tiny_speech_configs()
    return EmotionOmniTalkerForConditionalGeneration(
        dataclasses.replace(config, dropout=0.0, **{"max_units_per_token": 24, **overrides})
    )


def make_inputs(batch=3, reply=12, units=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([reply, reply - 5, 7][:batch])
    hidden, embeds = torch.randn(batch, reply, H, generator=g), torch.randn(batch, reply, H, generator=g)
    for i, n in enumerate(lengths):  # the thinker zero-pads past each reply
        hidden[i, n:] = embeds[i, n:] = 0
    unit_ids = torch.randint(0, 16, (batch, units), generator=g)
    unit_lengths = torch.tensor([units, units - 10, 25][:batch])
    return dict(
        reply_hidden=hidden,
        reply_embeds=embeds,
        reply_lengths=lengths,
        eos_embed=torch.randn(H, generator=g),
        emotion=torch.randn(batch, E, generator=g),
        units=unit_ids,
        unit_lengths=unit_lengths,
    )


def test_forward_shapes_and_loss():
    talker = make_talker()
    out = talker(**make_inputs())
    assert out.logits.shape == (3, 41, talker.config.vocab_size)  # SOS + 40 units, each predicts the next
    assert torch.isfinite(out.loss) and out.loss.item() == pytest.approx(out.unit_loss.item())
    out.loss.backward()
    for name in (
        "fusion.gate.weight",
        "adaln.modulation.weight",
        "prenet.0.self_attn.q_proj.weight",
        "decoder.1.mlp.up_proj.weight",
        "embed_units.weight",
        "lm_head.weight",
    ):
        assert talker.get_parameter(name).grad.abs().sum() > 0, name


def test_adaln_starts_as_layernorm():
    norm = AdaptiveLayerNorm(H, E)
    x, condition = torch.randn(2, 5, H), torch.randn(2, E) * 10
    assert torch.allclose(norm(x, condition), F.layer_norm(x, (H,)), atol=1e-6)
    with torch.no_grad():
        norm.modulation.weight.normal_()
    assert not torch.allclose(norm(x, condition), F.layer_norm(x, (H,)), atol=1e-3)  # then emotion bends it


def test_fusion_gate_is_bounded_and_mixes_convexly():
    fusion = GatedFusion(H)
    with torch.no_grad():
        fusion.gate.weight.mul_(50)  # push the gate towards saturation: it must still stay in (0, 1)
    hidden, embeds = torch.randn(2, 7, H), torch.randn(2, 7, H)
    gate = fusion.gate_values(hidden, embeds)
    assert ((gate >= 0) & (gate <= 1)).all() and gate.min() < 0.01 and gate.max() > 0.99
    x = fusion(hidden, embeds)
    low, high = torch.minimum(hidden, embeds), torch.maximum(hidden, embeds)
    assert ((x >= low - 1e-6) & (x <= high + 1e-6)).all()


def test_streaming_mask_windows():
    block, speech = torch.tensor([9, 6]), torch.tensor([40, 20])  # text block (BOS+text+EOS), SOS+units
    mask = talker_attention_mask(block, speech, 49, torch.tensor([True, False]), chunk_units=15, chunk_text=5)[:, 0]
    for j in range(40):  # speech position j of item 0 (0 = SOS)
        chunk = max(j - 1, 0) // 15
        visible = min((chunk + 1) * 5, 9)
        row = mask[0, 9 + j]
        assert row[:visible].all() and not row[visible:9].any(), j  # text: exactly its window
        assert row[9 : 9 + j + 1].all() and not row[9 + j + 1 :].any()  # units: causal
    assert mask[1, 6:26, :6].all()  # the full mask sees all text
    assert not mask[0, :9, 9:].any() and torch.equal(mask[0, :9, :9], torch.ones(9, 9, dtype=torch.bool).tril())
    assert mask[1, 30, 30] and mask[1, 30].sum() == 1  # padding sees only itself


def test_a_chunk_never_sees_text_beyond_its_window():
    """Changing text after position 5 of the text block must not move the first chunk's predictions."""
    talker = make_talker().eval()
    inputs = make_inputs(batch=1)
    later = {**inputs, "reply_hidden": inputs["reply_hidden"].clone(), "reply_embeds": inputs["reply_embeds"].clone()}
    later["reply_hidden"][:, 6:] += 3.0  # text-block positions > 5 (BOS is 0, so reply tokens 5+)
    later["reply_embeds"][:, 6:] -= 3.0
    chunked = torch.tensor([True])
    a, b = talker(**inputs, chunked=chunked).logits, talker(**later, chunked=chunked).logits
    assert torch.allclose(a[:, :16], b[:, :16], atol=1e-5)  # SOS + units 1-15: chunk 0 sees 5 positions
    assert not torch.allclose(a[:, 16:31], b[:, 16:31], atol=1e-3)  # chunk 1 sees 10: it moves
    full = talker(**inputs, chunked=~chunked).logits, talker(**later, chunked=~chunked).logits
    assert not torch.allclose(full[0][:, :16], full[1][:, :16], atol=1e-3)


def test_multi_token_prediction_modules():
    talker = make_talker(mtp_modules=2)
    out = talker(**make_inputs())
    assert len(out.mtp_losses) == 2
    expected = out.unit_loss + 0.8 * out.mtp_losses[0] + 0.64 * out.mtp_losses[1]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_emotion_condition_mixes_reference_and_prediction():
    talker = make_talker()
    predicted, reference = torch.zeros(64, E), torch.ones(64, E)
    talker.train()
    mixed = talker.choose_emotion(predicted, reference)
    share = mixed[:, 0].mean().item()
    assert 0.1 < share < 0.55  # reference_emotion_prob = 0.3
    talker.eval()
    assert torch.equal(talker.choose_emotion(predicted, reference), predicted)


def test_overfits_one_batch():
    talker = make_talker()
    inputs = make_inputs()
    optimizer = torch.optim.AdamW(talker.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = talker(**inputs).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3 * first


def test_cached_generation_matches_the_teacher_forced_pass():
    talker = make_talker().eval()
    inputs = make_inputs(batch=2)
    conditioning = {k: inputs[k] for k in ("reply_hidden", "reply_embeds", "reply_lengths", "eos_embed", "emotion")}
    generated = talker.generate(**conditioning, max_units=30)
    assert [len(u) for u in generated] == [30, 30]  # an untrained talker runs to the cap
    units = torch.tensor(generated)
    logits = talker(
        **conditioning, units=units, unit_lengths=torch.tensor([30, 30]), chunked=torch.tensor([False, False])
    ).logits
    special = [talker.config.bos_id, talker.config.sos_id, talker.config.pad_id]
    logits[..., special] = float("-inf")
    assert torch.equal(logits[:, :30].argmax(-1), units)  # each cached step = the full pass, batch padding included


def test_streaming_yields_chunks_of_units():
    talker = make_talker().eval()
    inputs = make_inputs(batch=2)
    conditioning = {k: inputs[k] for k in ("reply_hidden", "reply_embeds", "reply_lengths", "eos_embed", "emotion")}
    chunks = list(talker.stream(**conditioning, max_units=40))
    assert [len(c[0]) for c in chunks] == [15, 15, 10]
    assert [u for c in chunks for u in c[0]] == talker.generate(**conditioning, max_units=40)[0]
    # A streaming vocoder takes the units as they are made (its own policy says when audio is due).
    steps = list(talker.stream(**conditioning, max_units=40, every=1))
    assert [len(c[0]) for c in steps] == [1] * 40
    assert [u for c in steps for u in c[0]] == [u for c in chunks for u in c[0]]


def test_an_empty_reply_gets_no_units():
    talker = make_talker().eval()
    inputs = make_inputs(batch=2)
    conditioning = {k: inputs[k] for k in ("reply_hidden", "reply_embeds", "reply_lengths", "eos_embed", "emotion")}
    conditioning["reply_lengths"] = torch.tensor([0, 4])
    units = talker.generate(**conditioning, max_units=20)
    assert units[0] == [] and len(units[1]) == 20


def test_a_stuck_unit_ends_the_reply():
    talker = make_talker(max_unit_run=5).eval()
    with torch.no_grad():  # make one unit win every step: an undertrained talker's drone
        talker.lm_head.weight.zero_()
        talker.lm_head.bias.zero_()
        talker.lm_head.bias[3] = 10.0
    inputs = make_inputs(batch=1)
    conditioning = {k: inputs[k] for k in ("reply_hidden", "reply_embeds", "reply_lengths", "eos_embed", "emotion")}
    assert talker.generate(**conditioning) == [[3] * 5]
