"""Restyled replies: each train reply's words spoken again in another reply emotion, for training stage 2.

In the synthesized data every reply emotion has its own phrasing ("I'm so sorry" is apologetic), so a talker
can learn each emotion's voice from the words alone and leave the emotion vector its AdaLN is given unused.
Measured on the demo data (2026-11-28): one reply text spoken with the "comforting" and the "excited" vector came
out at the same median pitch, 202 Hz. Hearing the same words in several emotions, with the emotion vector as
the only thing that tells them apart, makes the vector do the work the paper gives it. Real emotional speech
data (the paper's) has this variety by nature; our one-synthesizer set needs it made.

Clips are spoken by the dataset's own synthesizer, voice and per-utterance jitter, like the reference replies.

The cost, measured on the demo data (2 cores, 2026-11-28): one restyled clip per train reply doubles stage 2's
data. With it, after 480 steps (5.7 min), the same text spoken with the "comforting" and the "excited" vector came
out at 185 Hz and 325 Hz (8.4 s and 6.5 s long): the vector now carries the emotion. But the judged
speech-emotion agreement fell to 0.43 (0.30 after 240 steps), against 0.62-0.67 without restyling, where the
words carry much of it: the vector path needs more training than the demo's 10-minute budget gives. So it is off
by default (`restyled_per_reply=0`); larger runs should turn it on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.audio.io import save_wav
from components.contracts import RESPONSE_EMOTIONS

RESTYLED_DIR = "restyled"  # WAVs inside the speech-units directory


@dataclass(frozen=True)
class RestyledReply:
    id: str  # the manifest row whose reply text (and user turn) this restyles
    emotion: str  # the reply emotion it is spoken with (one of RESPONSE_EMOTIONS, not the row's)
    wav: str  # path relative to the speech-units directory


def restyle_replies(
    rows: list[dict], out_dir: Path, per_reply: int = 1, seed: int = 0, workers: int = 2
) -> list[RestyledReply]:
    """Speak each row's reply text in `per_reply` other reply emotions (seeded); write the WAVs under
    `out_dir`/RESTYLED_DIR and return what was written."""
    if per_reply <= 0 or not rows:
        return []
    from components.synthesis.speech import EspeakSpeech  # imported when used: it needs espeak-ng and sox
    from components.synthesis.taxonomy import ASSISTANT_SPEAKER

    speech = EspeakSpeech()
    jobs = []
    for index, row in enumerate(rows):
        others = [e for e in RESPONSE_EMOTIONS if e != row["response_emotion"]]
        rng = np.random.default_rng([seed, index])
        for emotion in rng.choice(others, size=min(per_reply, len(others)), replace=False):
            jobs.append((row, str(emotion), np.random.default_rng([seed, index, RESPONSE_EMOTIONS.index(emotion)])))

    def speak(job) -> RestyledReply:
        row, emotion, rng = job
        wav = f"{RESTYLED_DIR}/{row['id']}_{emotion}.wav"
        save_wav(Path(out_dir) / wav, speech.synthesize(row["response_text"], emotion, ASSISTANT_SPEAKER, rng))
        return RestyledReply(row["id"], emotion, wav)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # each call waits on espeak-ng and sox processes
        return list(pool.map(speak, jobs))
