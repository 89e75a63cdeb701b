"""A seeded template grammar for one dialogue turn: what the user says and how the assistant answers.

User turn = emotion-bearing phrasing around a domain topic ("I'm furious, my flight got cancelled
again!"). Reply = opener chosen by the reply emotion + a middle sentence about the same topic + a
closing chosen by the reply emotion. A model that hears the user can learn the reply: the emotion picks
opener and closing, the topic picks the middle; several alternatives per slot keep it from memorizing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.contracts import DOMAINS, RESPONSE_EMOTIONS, USER_EMOTIONS
from components.synthesis.topics import TOPICS

# {topic} is the topic clause as is; {Topic} is it with a capital first letter.
USER_TEMPLATES: dict[str, tuple[str, ...]] = {
    "neutral": (
        "Just so you know, {topic}.",
        "So, {topic}.",
        "Quick update, {topic}.",
        "By the way, {topic}.",
        "Heads up, {topic}.",
        "Just letting you know, {topic}.",
        "Nothing big, but {topic}.",
        "For the record, {topic}.",
    ),
    "happy": (
        "I'm so happy, {topic}!",
        "Great news, {topic}!",
        "{Topic} and I'm thrilled!",
        "Guess what, {topic}!",
        "I'm over the moon, {topic}!",
        "Best day ever, {topic}!",
        "{Topic} and I can't stop smiling!",
        "I'm so glad, {topic}!",
    ),
    # Sad templates stay short: the sad voice is the slowest, and the whole turn must fit in ~6 seconds.
    "sad": (
        "I feel so down, {topic}.",
        "{Topic} and I feel empty.",
        "I'm really sad, {topic}.",
        "It hurts, {topic}.",
        "I'm heartbroken, {topic}.",
        "I feel awful, {topic}.",
        "I'm so miserable, {topic}.",
        "{Topic} and my heart aches.",
    ),
    "angry": (
        "I'm furious, {topic}!",
        "This is ridiculous, {topic}!",
        "{Topic} and I'm fed up!",
        "I can't stand this, {topic}!",
        "I'm so angry, {topic}!",
        "I'm livid, {topic}!",
        "{Topic} and it makes me so mad!",
        "This makes my blood boil, {topic}!",
    ),
    "fearful": (
        "I'm really scared, {topic}.",
        "I'm so nervous, {topic}.",
        "{Topic} and I'm terrified.",
        "I'm worried sick, {topic}.",
        "I'm so anxious, {topic}.",
        "I'm frightened, {topic}.",
        "{Topic} and I can't stop shaking.",
        "I'm panicking, {topic}.",
    ),
    "surprised": (
        "Wow, {topic}!",
        "No way, {topic}!",
        "You won't believe it, {topic}!",
        "{Topic}, can you believe it?",
        "I can't believe it, {topic}!",
        "What a surprise, {topic}!",
        "Out of the blue, {topic}!",
        "{Topic}, I'm stunned!",
    ),
}

OPENERS: dict[str, tuple[str, ...]] = {
    "neutral": (
        "Thanks for telling me.",
        "Okay, I understand.",
        "Got it, thank you.",
        "Alright, noted.",
        "Sure, thanks for the update.",
        "Okay, good to know.",
    ),
    "cheerful": (
        "That's wonderful news!",
        "Oh, how lovely!",
        "That sounds great!",
        "Oh, nice to hear!",
        "That's really nice!",
        "Oh, that's so good to hear!",
        "How wonderful!",
    ),
    "excited": (
        "Wow, that's amazing!",
        "No way, that's incredible!",
        "Oh my gosh, really?",
        "That's so exciting!",
        "Whoa, that's huge!",
        "This is incredible!",
        "Oh wow, I can't believe it!",
    ),
    "comforting": (
        "I'm so sorry to hear that.",
        "Oh, that sounds really hard.",
        "I'm here for you.",
        "That must hurt a lot.",
        "Oh no, I'm so sorry.",
        "That's really painful.",
        "My heart goes out to you.",
    ),
    "apologetic": (
        "I'm really sorry about that.",
        "I'm sorry, that's so frustrating.",
        "I apologize, that should not have happened.",
        "That's not okay, and I'm sorry.",
        "I'm sorry you went through that.",
        "That's really unfair, I'm sorry.",
        "Sorry, that sounds so annoying.",
    ),
    "calm": (
        "Okay, let's take a slow breath.",
        "I hear you.",
        "Alright, let's slow down for a moment.",
        "Let's take this one step at a time.",
        "Okay, I'm listening.",
        "Let's pause for a second.",
        "It's alright, let's breathe.",
    ),
    "reassuring": (
        "It's going to be okay.",
        "You're not alone in this.",
        "Don't worry, you can handle this.",
        "It's normal to feel that way.",
        "You'll be alright.",
        "It's okay to be nervous.",
        "I'm sure it will be fine.",
    ),
}

# {subject} is the topic's subject ("your flight"); {Subject} is it capitalized.
MIDDLES: dict[str, tuple[str, ...]] = {
    "neutral": (
        "Let me know if you want help with {subject}.",
        "We can plan {subject} together.",
        "I can help you keep track of {subject}.",
        "Thanks for keeping me posted on {subject}.",
        "I'll keep {subject} in mind.",
    ),
    "cheerful": (
        "I'm really glad you told me about {subject}.",
        "{Subject} sounds like a bright spot in your day.",
        "It's lovely to hear about {subject}.",
        "{Subject} is such a nice thing to hear about.",
        "I love hearing about {subject}.",
    ),
    "excited": (
        "{Subject} is such big news!",
        "Tell me everything about {subject}!",
        "{Subject} is such a great surprise!",
        "I can't stop thinking about {subject}!",
        "I'm so excited about {subject}!",
    ),
    "comforting": (
        "It makes sense that {subject} weighs on you.",
        "Anyone would feel hurt by {subject}.",
        "Take all the time you need with {subject}.",
        "{Subject} is a lot to carry.",
        "It's okay to feel sad about {subject}.",
    ),
    "apologetic": (
        "Nobody should have to deal with {subject} like that.",
        "I'm sorry {subject} turned into such a mess.",
        "{Subject} should have been handled much better.",
        "It's so unfair that you had to face {subject}.",
        "{Subject} is really not acceptable.",
    ),
    "calm": (
        "We can talk through {subject} together, one piece at a time.",
        "{Subject} feels heavy right now, and that's okay.",
        "There is no rush to sort out {subject} today.",
        "{Subject} doesn't have to be solved all at once.",
        "We can think about {subject} slowly, together.",
    ),
    "reassuring": (
        "{Subject} will most likely go better than you fear.",
        "Lots of people get through {subject} just fine.",
        "You are more prepared for {subject} than you think.",
        "Plenty of people have faced {subject} and come out fine.",
        "{Subject} is something you can handle.",
    ),
}

CLOSINGS: dict[str, tuple[str, ...]] = {
    "neutral": (
        "Anything else on your mind?",
        "Just tell me if you need anything.",
        "I'm here if you need me.",
        "Keep me posted.",
        "Let me know how it goes.",
    ),
    "cheerful": (
        "Enjoy every moment of it!",
        "You totally deserve this.",
        "Keep that smile going!",
        "I'm so happy for you!",
        "What a lovely thing!",
    ),
    "excited": (
        "I can't wait to hear more!",
        "This is the best news today!",
        "Let's celebrate!",
        "How amazing is that!",
        "I'm thrilled for you!",
    ),
    "comforting": (
        "I'm here whenever you want to talk.",
        "Be gentle with yourself today.",
        "You don't have to go through this alone.",
        "I'm sending you a big hug.",
        "Your feelings are valid.",
    ),
    "apologetic": (
        "Let's see how we can make it right.",
        "I'll help you sort it out.",
        "You have every right to be upset.",
        "Your frustration is completely fair.",
        "Let's get this fixed for you.",
    ),
    "calm": (
        "Take a deep breath with me.",
        "One step at a time is enough.",
        "We'll figure it out together.",
        "There's no need to rush.",
        "Nothing has to be decided right now.",
    ),
    "reassuring": (
        "You've got this.",
        "I believe in you.",
        "Everything will work out.",
        "You're stronger than you think.",
        "You're ready for this.",
    ),
}


def generate_dialogue_text(
    rng: np.random.Generator, domain: str, user_emotion: str, response_emotion: str
) -> tuple[str, str]:
    """Draw (user utterance, response text) for a domain and emotion pair; same rng state, same texts."""
    _check_label("domain", domain, DOMAINS)
    _check_label("user_emotion", user_emotion, USER_EMOTIONS)
    _check_label("response_emotion", response_emotion, RESPONSE_EMOTIONS)
    clause, subject = _pick(rng, TOPICS[domain][user_emotion])
    user = render_user(_pick(rng, USER_TEMPLATES[user_emotion]), clause)
    response = render_response(
        _pick(rng, OPENERS[response_emotion]),
        _pick(rng, MIDDLES[response_emotion]),
        _pick(rng, CLOSINGS[response_emotion]),
        subject,
    )
    return user, response


def render_user(template: str, clause: str) -> str:
    """Fill a USER_TEMPLATES entry with a topic clause."""
    return template.format(topic=clause, Topic=_capitalize(clause))


def render_response(opener: str, middle: str, closing: str, subject: str) -> str:
    """Join an opener, a MIDDLES entry filled with the topic's subject, and a closing."""
    return " ".join((opener, middle.format(subject=subject, Subject=_capitalize(subject)), closing))


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_label(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {allowed} (components/contracts.py); pass one of those")
