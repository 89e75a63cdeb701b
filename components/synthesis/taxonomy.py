"""How each emotion sounds (espeak-ng prosody + sox effects) and who speaks, in which engine's voice.

Every label in USER_EMOTIONS and RESPONSE_EMOTIONS has a profile, so both sides of a dialogue are spoken
with their emotion. The profiles exaggerate textbook acoustic correlates (Scherer 2003): sadness is
slow, low, quiet and flat; anger fast, loud and harsh; fear fast, high and trembling; joy and surprise
high with a wide pitch range. Exaggeration is deliberate: espeak-ng is a formant synthesizer and subtle
settings disappear under the per-utterance jitter that stops a model from keying on the speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.contracts import RESPONSE_EMOTIONS, USER_EMOTIONS


@dataclass(frozen=True)
class ProsodyProfile:
    """espeak-ng settings for one emotion, plus sox effects applied after synthesis."""

    pitch: int = 50  # espeak -p, 0..99; 50 is the voice's own base pitch
    pitch_range: int = 100  # SSML <prosody range>, percent of the voice's intonation range
    rate: int = 165  # espeak -s, words per minute; espeak's default is 175
    amplitude: int = 100  # espeak -a, 0..200; scales loudness linearly
    word_gap: int = 0  # espeak -g, extra pause between words in 10 ms units
    effects: tuple[str, ...] = ()  # sox effect chain, e.g. ("tremolo", "6", "40")


PROSODY: dict[str, ProsodyProfile] = {
    # Shared by both sides: a plain statement and a plain answer.
    "neutral": ProsodyProfile(),
    # User emotions.
    "happy": ProsodyProfile(pitch=68, pitch_range=180, rate=185, amplitude=120),
    "sad": ProsodyProfile(pitch=28, pitch_range=25, rate=135, amplitude=60, word_gap=2, effects=("lowpass", "2500")),
    "angry": ProsodyProfile(pitch=58, pitch_range=150, rate=195, amplitude=170, effects=("overdrive", "8")),
    # The tremolo is the trembling voice of fear: 7 Hz amplitude wobble at 45% depth.
    "fearful": ProsodyProfile(pitch=75, pitch_range=90, rate=200, amplitude=85, effects=("tremolo", "7", "45")),
    "surprised": ProsodyProfile(pitch=82, pitch_range=200, rate=170, amplitude=135),
    # Response emotions.
    "cheerful": ProsodyProfile(pitch=64, pitch_range=160, rate=180, amplitude=115),
    "excited": ProsodyProfile(pitch=78, pitch_range=200, rate=195, amplitude=140),
    "comforting": ProsodyProfile(pitch=38, pitch_range=70, rate=140, amplitude=80, word_gap=1),
    "apologetic": ProsodyProfile(pitch=42, pitch_range=60, rate=150, amplitude=85),
    "calm": ProsodyProfile(pitch=40, pitch_range=40, rate=145, amplitude=90, word_gap=1),
    "reassuring": ProsodyProfile(pitch=46, pitch_range=90, rate=155, amplitude=100),
}

# Intonation for engines without per-syllable pitch control (engines.EngineSpeech): pitch movements over the
# spoken part of a turn, as (start, end, cents), start and end fractions of it. They stand in for espeak-ng's
# pitch range, and unlike a pitch level they are heard in any voice: a listener cannot know an unknown speaker's
# usual pitch, but hears a rise or a fall. Shapes after Scherer (2003) and Banse & Scherer (1996): joy bounces
# in wide arcs, surprise ends high, sadness drifts down flat and narrow, anger falls hard on its stress, fear
# climbs. Reply emotions have none: replies are spoken by espeak-ng, whose SSML carries their pitch range.
INTONATION: dict[str, tuple[tuple[float, float, int], ...]] = {
    "neutral": ((0.6, 1.0, -150),),
    "happy": ((0.0, 0.25, 350), (0.25, 0.5, -300), (0.5, 0.75, 300), (0.75, 1.0, -250)),
    "sad": ((0.1, 1.0, -300),),
    "angry": ((0.0, 0.15, 250), (0.4, 1.0, -550)),
    "fearful": ((0.1, 1.0, 350),),
    "surprised": ((0.0, 0.2, 250), (0.2, 0.5, -150), (0.6, 1.0, 650)),
}

# Every engine's user voices, as "<engine>:<voice>" speakers (engines.EngineSpeech speaks them). flite's awb_time
# only says the time; Debian's festival package carries kal_diphone. espeak-ng's are three male and three female
# variants, so that emotion, not the speaker's register, has to explain pitch.
ENGINE_VOICES: dict[str, tuple[str, ...]] = {
    "espeak-ng": ("en-us+m3", "en-us+m7", "en-gb-x-rp+m2", "en-us+f2", "en+f4", "en+f5"),
    "flite": ("kal", "kal16", "awb", "rms", "slt"),
    "festival": ("kal_diphone",),
}

# Voices that never speak a training turn: they speak only the unseen-voice split (contracts.UNSEEN_VOICE_SPLIT),
# which measures whether the model learned emotion or the voices it trained on. A whole engine (festival), a
# voice of another kind (flite's clustergen slt, the only female flite voice) and an espeak-ng variant.
HELD_OUT_SPEAKERS: tuple[str, ...] = ("festival:kal_diphone", "flite:slt", "espeak-ng:en+f5")

# The voices of the training and in-distribution test turns.
SPEAKERS: tuple[str, ...] = tuple(
    f"{engine}:{voice}"
    for engine, voices in ENGINE_VOICES.items()
    for voice in voices
    if f"{engine}:{voice}" not in HELD_OUT_SPEAKERS
)

# The assistant always answers in one espeak-ng voice (speech.EspeakSpeech), as a deployed assistant would; it
# is no user's voice, so a user clip never sounds like the assistant.
ASSISTANT_SPEAKER = "en-us+f3"


def speaker_engine(speaker: str) -> str:
    """The TTS engine of a manifest speaker: "flite:slt" -> "flite". Datasets from before the engines named only an
    espeak-ng voice ("en-us+m3"): those are espeak-ng's."""
    engine, colon, _ = speaker.partition(":")
    return engine if colon else "espeak-ng"


def prosody_for(emotion: str) -> ProsodyProfile:
    """The profile for an emotion label; raises ValueError naming the known labels."""
    try:
        return PROSODY[emotion]
    except KeyError:
        known = sorted(set(USER_EMOTIONS) | set(RESPONSE_EMOTIONS))
        raise ValueError(
            f"no prosody profile for emotion {emotion!r}; use one of {known} or add it to PROSODY"
        ) from None
