"""Plan every dialogue of a dataset from one seeded rng, before any audio is made.

Balance is by construction rather than by luck, so small datasets are still usable: user emotions
get near-equal counts; within each emotion, domains and speakers cycle through shuffled orders (so a
speaker never stands in for an emotion); the test split takes `test_fraction` of every emotion.
Reply emotions are drawn from EMPATHY_MAP with its weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.contracts import DOMAINS, EMPATHY_MAP, SPLITS, USER_EMOTIONS
from components.synthesis.config import SynthesisConfig
from components.synthesis.taxonomy import SPEAKERS
from components.synthesis.text import generate_dialogue_text

TRAIN, TEST = SPLITS  # unpacking fails loudly if the contract ever grows a third split


@dataclass(frozen=True)
class DialoguePlan:
    index: int              # 0-based position; also seeds this row's prosody jitter
    id: str                 # zero-padded 1-based, e.g. "000001"; names the wav files
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
    for emotion, rows in by_emotion.items():
        for row, domain, speaker in zip(rows, _cycle(rng, DOMAINS, len(rows)), _cycle(rng, SPEAKERS, len(rows))):
            domains[row], speakers[row] = domain, speaker
        # At least one test row, and never all of them, so every emotion is in both splits.
        n_test = min(len(rows) - 1, max(1, round(len(rows) * config.test_fraction)))
        for row in rng.choice(rows, size=n_test, replace=False):
            splits[row] = TEST
    width = max(6, len(str(config.n)))
    plans = []
    for i in range(config.n):
        names, weights = zip(*EMPATHY_MAP[emotions[i]])
        response_emotion = names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]
        user_text, response_text = generate_dialogue_text(rng, domains[i], emotions[i], response_emotion)
        plans.append(DialoguePlan(
            index=i, id=f"{i + 1:0{width}d}", split=splits[i], domain=domains[i], speaker=speakers[i],
            user_emotion=emotions[i], response_emotion=response_emotion,
            user_text=user_text, response_text=response_text,
        ))
    return plans


def _cycle(rng: np.random.Generator, labels: tuple[str, ...], count: int) -> list[str]:
    """`count` labels made of back-to-back shuffles of `labels`: each appears floor or ceil(count/len) times."""
    order: list[str] = []
    while len(order) < count:
        order += [labels[i] for i in rng.permutation(len(labels))]
    return order[:count]
