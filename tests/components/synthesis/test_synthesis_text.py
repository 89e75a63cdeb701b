"""The text grammar: full coverage of the taxonomy, length bounds over every combination, seeded variety."""
import itertools

import numpy as np
import pytest

from components.contracts import DOMAINS, EMPATHY_MAP, RESPONSE_EMOTIONS, USER_EMOTIONS
from components.synthesis.text import (
    CLOSINGS, MIDDLES, OPENERS, USER_TEMPLATES, generate_dialogue_text, render_response, render_user,
)
from components.synthesis.topics import TOPICS


def every_dialogue():
    """Every (user text, response text) the grammar can produce for the pairs EMPATHY_MAP allows."""
    for domain, user_emotion in itertools.product(DOMAINS, USER_EMOTIONS):
        topics, templates = TOPICS[domain][user_emotion], USER_TEMPLATES[user_emotion]
        for (clause, subject), template in itertools.product(topics, templates):
            for response_emotion, _ in EMPATHY_MAP[user_emotion]:
                for parts in itertools.product(OPENERS[response_emotion], MIDDLES[response_emotion],
                                               CLOSINGS[response_emotion]):
                    yield render_user(template, clause), render_response(*parts, subject)


def test_taxonomy_covers_every_domain_emotion_and_reply_emotion():
    assert set(TOPICS) == set(DOMAINS)
    for domain in DOMAINS:
        assert set(TOPICS[domain]) == set(USER_EMOTIONS)
        assert all(len(topics) >= 3 for topics in TOPICS[domain].values())
    assert set(USER_TEMPLATES) == set(USER_EMOTIONS)
    for slot in (OPENERS, MIDDLES, CLOSINGS):
        assert set(slot) == set(RESPONSE_EMOTIONS) and all(len(options) >= 3 for options in slot.values())


def test_every_combination_is_plain_ascii_and_within_length_bounds():
    user_words, response_words = set(), set()
    for user, response in every_dialogue():
        assert user.isascii() and response.isascii() and "{" not in user + response
        user_words.add(len(user.split()))
        response_words.add(len(response.split()))
    assert 6 <= min(user_words) and max(user_words) <= 20
    assert 10 <= min(response_words) and max(response_words) <= 30


def test_same_rng_state_gives_the_same_texts():
    first = generate_dialogue_text(np.random.default_rng(1), "travel", "angry", "apologetic")
    second = generate_dialogue_text(np.random.default_rng(1), "travel", "angry", "apologetic")
    assert first == second


def test_texts_vary_and_follow_their_labels():
    rng = np.random.default_rng(0)
    texts = [generate_dialogue_text(rng, "travel", "sad", "comforting") for _ in range(200)]
    assert len(set(texts)) > 50
    clauses = {clause for clause, _ in TOPICS["travel"]["sad"]}
    assert all(any(c.lower() in user.lower() for c in clauses) for user, _ in texts)
    assert all(response.startswith(OPENERS["comforting"]) for _, response in texts)


def test_rejects_unknown_labels():
    with pytest.raises(ValueError, match="domain 'space' is not one of"):
        generate_dialogue_text(np.random.default_rng(0), "space", "sad", "comforting")
    with pytest.raises(ValueError, match="response_emotion 'sad' is not one of"):
        generate_dialogue_text(np.random.default_rng(0), "travel", "sad", "sad")
