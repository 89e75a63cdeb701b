"""SynthesisConfig: the one typed source of truth for a dataset build, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.audio.channels import ChannelConfig
from components.contracts import USER_EMOTIONS
from components.errors import ConfigError
from components.synthesis.engines import EngineSpeechConfig
from components.synthesis.filters import FilterConfig
from components.synthesis.speech import SpeechConfig
from components.synthesis.taxonomy import ENGINE_VOICES, HELD_OUT_SPEAKERS

TEXT_BACKENDS = ("template", "llm")


@dataclass
class SynthesisConfig:
    # Dialogues. 480 with 10 % test and 10 % unseen-voice leave 384 for training. The 300 of earlier demos left the
    # user-emotion head 210 training turns of the varied voices and it learned them (stage 1 alone, 2026-11-29:
    # unseen-voice accuracy 0.60, in-distribution 0.70; 480 training turns in as many steps: 0.75 and 0.90).
    n: int = 480
    seed: int = 0  # drives texts, labels, splits, speakers, prosody and channels
    test_fraction: float = 0.1  # per user emotion, spoken by training voices; at least one of each emotion
    # Per user emotion, spoken only by held_out_speakers (contracts.UNSEEN_VOICE_SPLIT); 0 makes no such split.
    unseen_voice_fraction: float = 0.1
    workers: int = 2  # worker processes, each a synthesizer/sox chain; the output does not depend on it
    # Dialogues per shard: the unit a stopped build keeps (and a resumed one redoes). The output does not depend on
    # it, but a partial build resumes only with the shard_size it started with.
    shard_size: int = 50
    engines: tuple[str, ...] = tuple(ENGINE_VOICES)  # user voices come from these TTS engines
    # "<engine>:<voice>"s that never speak a training turn; None: taxonomy.HELD_OUT_SPEAKERS of the chosen engines.
    held_out_speakers: tuple[str, ...] | None = None
    speech: SpeechConfig = field(default_factory=SpeechConfig)  # the assistant's replies (espeak-ng)
    user_speech: EngineSpeechConfig = field(default_factory=EngineSpeechConfig)  # user turns: speaker randomisation
    # Phone lines, codecs, rooms and noise on the user turns (components/audio/channels.py), each recorded in the
    # manifest's user_channel; None leaves every turn as the synthesizer made it.
    channels: ChannelConfig | None = field(default_factory=ChannelConfig)
    # Who writes the dialogue text: "template", the offline seeded grammar (text.py), or "llm", an OpenAI-compatible
    # chat endpoint as the paper used GPT-4o (llm.py; URL, model and key from OMNI_LLM_* variables or a Secret).
    text_backend: str = "template"
    # The paper's filters on the spoken dialogues (filters.py); None keeps every dialogue.
    filters: FilterConfig | None = field(default_factory=FilterConfig)

    def __post_init__(self):
        self.engines = tuple(self.engines)
        if self.held_out_speakers is None:
            self.held_out_speakers = tuple(s for s in HELD_OUT_SPEAKERS if s.partition(":")[0] in self.engines)
        self.held_out_speakers = tuple(self.held_out_speakers)
        splits = 2 + (self.unseen_voice_fraction > 0)
        minimum = len(USER_EMOTIONS) * splits
        if not isinstance(self.n, int) or self.n < minimum:
            raise ConfigError(
                f"n={self.n!r} is too small: every user emotion needs a dialogue in each of the {splits} splits; "
                f"use n >= {minimum}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction={self.test_fraction!r} must be between 0 and 1, e.g. 0.2")
        if not 0.0 <= self.unseen_voice_fraction < 1.0 - self.test_fraction:
            raise ConfigError(
                f"unseen_voice_fraction={self.unseen_voice_fraction!r} must be in [0, 1 - test_fraction)"
                ", e.g. 0.1; 0 makes no unseen-voice split"
            )
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers={self.workers!r} must be an int >= 1; use 1 for no parallelism")
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            raise ConfigError(f"shard_size={self.shard_size!r} must be an int >= 1, e.g. 50 dialogues per shard")
        unknown = [e for e in self.engines if e not in ENGINE_VOICES]
        if unknown or not self.engines:
            raise ConfigError(f"engines={list(self.engines)}: use some of {list(ENGINE_VOICES)}")
        outside = [
            s
            for s in self.held_out_speakers
            if s.partition(":")[0] not in self.engines or s.partition(":")[2] not in ENGINE_VOICES[s.partition(":")[0]]
        ]
        if outside:
            raise ConfigError(
                f"held_out_speakers {outside} are not voices of engines {list(self.engines)}; "
                'use "<engine>:<voice>" from components.synthesis.taxonomy.ENGINE_VOICES'
            )
        if self.unseen_voice_fraction > 0 and not self.held_out_speakers:
            raise ConfigError("unseen_voice_fraction > 0 needs held_out_speakers; or set unseen_voice_fraction=0")
        if not self.training_speakers:
            raise ConfigError(
                f"engines={list(self.engines)} leave no voice for training once "
                f"{list(self.held_out_speakers)} are held out; add an engine or hold out fewer voices"
            )
        if self.channels is not None:
            self.channels.validate()
        if self.text_backend not in TEXT_BACKENDS:
            raise ConfigError(f"text_backend={self.text_backend!r}: use one of {TEXT_BACKENDS}")

    @property
    def training_speakers(self) -> tuple[str, ...]:
        """The voices of the train and in-distribution test turns: the enabled engines' voices, less the held out."""
        return tuple(
            speaker
            for engine in self.engines
            for speaker in (f"{engine}:{v}" for v in ENGINE_VOICES[engine])
            if speaker not in self.held_out_speakers
        )
