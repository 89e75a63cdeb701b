"""Plan every dialogue of a dataset from one seeded rng, before any audio is made.

Balance is by construction rather than by luck, so small datasets are still usable: user emotions
get near-equal counts; within each emotion, domains and speakers cycle through shuffled orders (so a
speaker never stands in for an emotion); the test split takes `test_fraction` of every emotion and the
unseen-voice split `unseen_voice_fraction`, spoken only by the held-out voices, which no other row uses.
Reply emotions are drawn from EMPATHY_MAP with its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.contracts import DOMAINS, EMPATHY_MAP, SPLITS, USER_EMOTIONS
from components.synthesis.config import SynthesisConfig
from components.synthesis.text import generate_dialogue_text

TRAIN, TEST, UNSEEN_VOICE = SPLITS  # unpacking fails loudly if the contract ever grows a fourth split


@dataclass(frozen=True)
class DialoguePlan:
    index: int  # 0-based position; also seeds this row's prosody jitter
    id: str  # zero-padded 1-based, e.g. "000001"; names the wav files
    split: str
    domain: str
    speaker: str
    user_emotion: str
    response_emotion: str
    user_text: str
    response_text: str


def plan_dialogues(config: SynthesisConfig) -> list[DialoguePlan]:
    """All dialogue plans for `config`; the same seed and n give the same plans."""
    rng = np.random.default_rng(config.seed)
    emotions = [USER_EMOTIONS[i % len(USER_EMOTIONS)] for i in rng.permutation(config.n)]
    by_emotion = {e: [i for i, emotion in enumerate(emotions) if emotion == e] for e in USER_EMOTIONS}
    domains, speakers, splits = [""] * config.n, [""] * config.n, [TRAIN] * config.n
    for rows in by_emotion.values():
        for row, domain in zip(rows, _cycle(rng, DOMAINS, len(rows))):
            domains[row] = domain
        # At least one row in each held-out split, and never all of them, so every emotion is in every split.
        n_unseen = max(1, round(len(rows) * config.unseen_voice_fraction)) if config.unseen_voice_fraction else 0
        n_test = min(len(rows) - 1 - n_unseen, max(1, round(len(rows) * config.test_fraction)))
        held_out = rng.choice(rows, size=n_test + n_unseen, replace=False).tolist()
        for row in held_out[:n_test]:
            splits[row] = TEST
        for row in held_out[n_test:]:
            splits[row] = UNSEEN_VOICE
        seen = [row for row in rows if splits[row] != UNSEEN_VOICE]
        unseen = held_out[n_test:]
        for group, voices in ((seen, config.training_speakers), (unseen, config.held_out_speakers)):
            for row, speaker in zip(group, _cycle(rng, voices, len(group))):
                speakers[row] = speaker
    width = max(6, len(str(config.n)))
    plans = []
    for i in range(config.n):
        names, weights = zip(*EMPATHY_MAP[emotions[i]])
        response_emotion = names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]
        user_text, response_text = generate_dialogue_text(rng, domains[i], emotions[i], response_emotion)
        plans.append(
            DialoguePlan(
                index=i,
                id=f"{i + 1:0{width}d}",
                split=splits[i],
                domain=domains[i],
                speaker=speakers[i],
                user_emotion=emotions[i],
                response_emotion=response_emotion,
                user_text=user_text,
                response_text=response_text,
            )
        )
    return plans


def _cycle(rng: np.random.Generator, labels: tuple[str, ...], count: int) -> list[str]:
    """`count` labels made of back-to-back shuffles of `labels`: each appears floor or ceil(count/len) times."""
    order: list[str] = []
    while len(order) < count:
        order += [labels[i] for i in rng.permutation(len(labels))]
    return order[:count]
