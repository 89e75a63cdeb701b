"""SynthesisConfig: the one typed source of truth for a dataset build, checked when it is made."""
from __future__ import annotations

from dataclasses import dataclass, field

from components.audio.channels import ChannelConfig
from components.contracts import SPLITS, USER_EMOTIONS
from components.synthesis.speech import SpeechConfig


@dataclass
class SynthesisConfig:
    n: int = 300                  # dialogues; ~0.8 h of audio, ~10 s on 2 cores
    seed: int = 0                 # drives texts, labels, splits, speakers and prosody jitter
    test_fraction: float = 0.2    # per user emotion; at least one dialogue of each goes to test
    workers: int = 2              # parallel espeak-ng/sox pairs; the output does not depend on it
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    # Phone lines, codecs, rooms and noise on the user turns (components/audio/channels.py), each recorded in the
    # manifest's user_channel; None leaves every turn as the synthesizer made it.
    channels: ChannelConfig | None = None

    def __post_init__(self):
        minimum = len(USER_EMOTIONS) * len(SPLITS)
        if not isinstance(self.n, int) or self.n < minimum:
            raise ValueError(
                f"n={self.n!r} is too small: every user emotion needs a dialogue in every split; use n >= {minimum}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction={self.test_fraction!r} must be between 0 and 1, e.g. 0.2")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers={self.workers!r} must be an int >= 1; use 1 for no parallelism")
        if self.channels is not None:
            self.channels.validate()
