"""The text grammar: full coverage of the taxonomy, length bounds over every combination, seeded variety."""

import itertools

import numpy as np
import pytest

from components.contracts import DOMAINS, EMPATHY_MAP, RESPONSE_EMOTIONS, USER_EMOTIONS
from components.synthesis.text import (
    CLOSINGS,
    MIDDLES,
    OPENERS,
    USER_TEMPLATES,
    generate_dialogue_text,
    render_response,
    render_user,
)
from components.synthesis.topics import TOPICS


def every_user_text():
    """Every user utterance the grammar can produce."""
    for domain, user_emotion in itertools.product(DOMAINS, USER_EMOTIONS):
        for (clause, _), template in itertools.product(TOPICS[domain][user_emotion], USER_TEMPLATES[user_emotion]):
            yield render_user(template, clause)


def every_response_text():
    """Every reply the grammar can produce for the pairs EMPATHY_MAP allows. Walked apart from the user side:
    no check needs both, and every (user, reply) pair would be over a million texts at 20 domains."""
    for domain, user_emotion in itertools.product(DOMAINS, USER_EMOTIONS):
        for (_, subject), (response_emotion, _) in itertools.product(
            TOPICS[domain][user_emotion], EMPATHY_MAP[user_emotion]
        ):
            for parts in itertools.product(
                OPENERS[response_emotion], MIDDLES[response_emotion], CLOSINGS[response_emotion]
            ):
                yield render_response(*parts, subject)


def test_taxonomy_covers_every_domain_emotion_and_reply_emotion():
    assert set(TOPICS) == set(DOMAINS)
    for domain in DOMAINS:
        assert set(TOPICS[domain]) == set(USER_EMOTIONS)
        assert all(len(topics) >= 3 for topics in TOPICS[domain].values())
    assert set(USER_TEMPLATES) == set(USER_EMOTIONS)
    for slot in (OPENERS, MIDDLES, CLOSINGS):
        assert set(slot) == set(RESPONSE_EMOTIONS) and all(len(options) >= 3 for options in slot.values())


def test_twenty_domains_each_with_enough_short_traceable_topics():
    assert len(DOMAINS) == len(set(DOMAINS)) == 20 and list(TOPICS) == list(DOMAINS)
    for domain in DOMAINS:
        assert all(len(TOPICS[domain][emotion]) >= 3 for emotion in USER_EMOTIONS)
        topics = [topic for emotion in USER_EMOTIONS for topic in TOPICS[domain][emotion]]
        assert all(4 <= len(clause.split()) <= 9 for clause, _ in topics), domain
        subjects = [subject for _, subject in topics]
        assert len(set(subjects)) == len(subjects), f"{domain} repeats a subject"
    for emotion in USER_EMOTIONS:
        assert len(USER_TEMPLATES[emotion]) == 8 and len(set(USER_TEMPLATES[emotion])) == 8


def test_every_reply_names_the_subject_of_the_topic_the_user_spoke_of():
    for domain, user_emotion in itertools.product(DOMAINS, USER_EMOTIONS):
        for (_, subject), (response_emotion, _) in itertools.product(
            TOPICS[domain][user_emotion], EMPATHY_MAP[user_emotion]
        ):
            for middle in MIDDLES[response_emotion]:
                reply = render_response(OPENERS[response_emotion][0], middle, CLOSINGS[response_emotion][0], subject)
                assert subject.lower() in reply.lower(), (middle, subject)
    # And through the generator: the clause the user said picks out the subject the reply names.
    rng = np.random.default_rng(0)
    for domain, user_emotion in itertools.product(DOMAINS, USER_EMOTIONS):
        subject_of = dict(TOPICS[domain][user_emotion])
        for response_emotion, _ in EMPATHY_MAP[user_emotion]:
            for _ in range(6):
                user, response = generate_dialogue_text(rng, domain, user_emotion, response_emotion)
                [clause] = [c for c in subject_of if c.lower() in user.lower()]
                assert subject_of[clause].lower() in response.lower(), (user, response)


def test_every_combination_is_plain_ascii_and_within_length_bounds():
    user_words, response_words = set(), set()
    for user in every_user_text():
        assert user.isascii() and "{" not in user
        user_words.add(len(user.split()))
    for response in every_response_text():
        assert response.isascii() and "{" not in response
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
