"""CosyVoice2 speech tokens -> 16 kHz audio: the `Token2Wav` backend for a local CosyVoice2-0.5B checkpoint.

    t2w = CosyVoice2Token2Wav.from_pretrained("ckpt/CosyVoice2-0.5B", prompt_wav="voice.wav")
    units = t2w.extract_units(wave16k)        # audio -> 25 Hz speech tokens in [0, 6561)
    audio = t2w.synthesize(units)             # tokens -> flow mel -> HiFT 24 kHz -> (T,) float32 at 16 kHz
    for chunk in t2w.stream(unit_chunks): ... # the same audio, emitted per components.speech.base.ChunkPolicy

Conditioning. CosyVoice2's flow has no emotion input: `emotion` is accepted (the protocol passes it) and
ignored, because the units themselves carry the prosody the talker chose. The voice comes from the
zero-shot prompt fixed at load time (`prompt_wav`: its tokens, mel and CAM++ embedding, as the reference's
zero-shot mode); `speaker` names a voice of the local backend and is ignored here for the same reason. With
no prompt the flow runs with no prompt tokens or mel and a zero speaker embedding: it still produces speech,
in a voice of its own choosing (the reference never does this; quality is the checkpoint's to decide).

Streaming. `stream` re-runs flow and HiFT over the whole prefix each time a chunk is due, with the last
`pre_lookahead_len` units as look-ahead context only (the reference's `finalize=False`), and emits the audio
not yet emitted. The last `CROSSFADE_UNITS` of each chunk are held back and cross-faded into the next run's
version of them (the reference cross-fades its HiFT cache the same way), so the chunks concatenate to exactly
the `synthesize` length. Cost: each chunk recomputes the prompt and the whole prefix, so streaming n units
does about n/24 + 1 times the work of one `synthesize` with the default policy (about 6x for a 5 s,
125-unit reply); the reference's cache-based chunked attention avoids this and is not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

from components.audio.io import load_wav
from components.contracts import SAMPLE_RATE
from components.errors import ConfigError
from components.speech.base import ChunkPolicy
from components.speech.cosyvoice2.checkpoint import (
    CAMPPLUS_FILE,
    FLOW_FILE,
    HIFT_FILE,
    SPEECH_TOKENIZER_FILE,
    check_checkpoint_dir,
    load_config,
    load_weights,
)
from components.speech.cosyvoice2.config import CosyVoice2Config
from components.speech.cosyvoice2.errors import CheckpointError
from components.speech.cosyvoice2.flow import CausalMaskedDiffWithXvec
from components.speech.cosyvoice2.frontend import CosyVoice2Frontend, SpeakerPrompt
from components.speech.cosyvoice2.hift import HiFTGenerator

CROSSFADE_UNITS = 1  # 40 ms: long enough to hide a chunk seam, short enough to add little latency
HIFT_SEED = 0  # seeds the vocoder's source phases and noise, so the same units give the same audio


class CosyVoice2Token2Wav:
    """CosyVoice2 flow + HiFT behind the Token2Wav protocol (num_units 6561, unit_rate 25.0 for 0.5B)."""

    def __init__(
        self,
        config: CosyVoice2Config,
        flow: CausalMaskedDiffWithXvec,
        hift: HiFTGenerator,
        frontend: CosyVoice2Frontend,
        prompt: SpeakerPrompt,
        device: str | torch.device = "cpu",
        n_timesteps: int = 10,
        chunk_policy: ChunkPolicy | None = None,
    ):
        if not isinstance(n_timesteps, int) or n_timesteps < 1:
            raise ConfigError(
                f"n_timesteps={n_timesteps!r}: give the number of Euler steps, an int >= 1 (the reference uses 10)"
            )
        self.config, self.frontend = config, frontend
        self.chunk_policy = chunk_policy or ChunkPolicy()
        self.device = torch.device(device)
        self.flow = flow.to(self.device).eval()
        self.hift = hift.to(self.device).eval()
        self.prompt = prompt.to(self.device)
        self.n_timesteps = n_timesteps
        self.num_units = config.flow.vocab_size
        self.unit_rate = config.unit_rate
        samples = config.samples_per_unit * SAMPLE_RATE / config.sample_rate
        if samples != int(samples):
            raise CheckpointError(
                f"a unit is {samples} samples at {SAMPLE_RATE} Hz; the output rate "
                f"{config.sample_rate} must make it whole to cut streaming chunks exactly"
            )
        self.samples_per_unit = int(samples)  # 640 at 16 kHz for CosyVoice2 (40 ms)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, prompt_wav: str | Path | None = None, device: str = "cpu", n_timesteps: int = 10
    ) -> CosyVoice2Token2Wav:
        """Load a local checkpoint directory (see checkpoint.REQUIRED_FILES); nothing is downloaded.

        `prompt_wav`: a recording of the voice to imitate (a few seconds of clean speech, any WAV rate);
        None synthesizes without a prompt (see the module docstring).
        """
        path = check_checkpoint_dir(path)
        config = load_config(path)
        flow = CausalMaskedDiffWithXvec(config.flow)
        load_weights(flow, path / FLOW_FILE)
        hift = HiFTGenerator(config.hift)
        load_weights(hift, path / HIFT_FILE, strip_prefix="generator.")
        frontend = CosyVoice2Frontend(path / SPEECH_TOKENIZER_FILE, path / CAMPPLUS_FILE, config)
        if prompt_wav is None:
            prompt = SpeakerPrompt.empty(config.flow.output_size, config.flow.spk_embed_dim)
        else:
            prompt = frontend.prompt(load_wav(prompt_wav))
        return cls(config, flow, hift, frontend, prompt, device=device, n_timesteps=n_timesteps)

    def extract_units(self, wave16k: np.ndarray) -> list[int]:
        """(T,) float32 16 kHz waveform (at most 30 s) -> its speech tokens, the units this backend speaks."""
        return self.frontend.speech_tokens(wave16k)

    def synthesize(
        self, units: Sequence[int], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> np.ndarray:
        """All units of one utterance -> (len(units) * samples_per_unit,) float32 at 16 kHz; [] -> empty.

        `emotion` and `speaker` are accepted and ignored (see the module docstring).
        """
        units = self._check_units(units)
        return self._render(units, finalize=True) if units else np.zeros(0, dtype=np.float32)

    def synthesize_batch(
        self, units: Sequence[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> list[np.ndarray]:
        """One by one: flow matching over padded token batches would need the reference's masks end to end."""
        return [self.synthesize(u) for u in units]

    def stream(
        self, unit_chunks: Iterable[Sequence[int]], emotion: torch.Tensor | None = None, speaker: str | None = None
    ) -> Iterator[np.ndarray]:
        """Units arriving in chunks -> audio chunks per `chunk_policy`; they concatenate to `synthesize`'s length.

        A chunk is due once `first_units` (then every further `hop_units`) units are known; it covers the
        units up to `lookahead_units` before the last known one. The rest is flushed when the input ends.
        """
        policy = self.chunk_policy
        lookahead = max(policy.lookahead_units, self.flow.pre_lookahead_len)
        fade = CROSSFADE_UNITS * self.samples_per_unit
        units: list[int] = []
        emitted, pending = 0, np.zeros(0, dtype=np.float32)  # pending: audio after `emitted`, held for the fade
        due = policy.first_units
        for chunk in unit_chunks:
            units.extend(self._check_units(chunk))
            while len(units) >= due:
                end = (due - lookahead) * self.samples_per_unit
                if end > emitted + len(pending):
                    wave = self._render(units[:due], finalize=False)
                    out, pending = _splice(wave, emitted, pending, end, hold=fade)
                    if out.size:
                        yield out
                    emitted += out.size
                due += policy.hop_units
        if units:
            out, _ = _splice(self._render(units, finalize=True), emitted, pending, None, hold=0)
            if out.size:
                yield out

    def _check_units(self, units: Sequence[int]) -> list[int]:
        values = np.asarray(units.cpu() if isinstance(units, torch.Tensor) else units)
        if values.size == 0:
            return []
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"units must be a 1-D sequence of ints, got shape {values.shape} dtype {values.dtype}")
        bad = np.flatnonzero((values < 0) | (values >= self.num_units))
        if bad.size:
            raise ValueError(
                f"unit {int(values[bad[0]])} at position {int(bad[0])} is outside [0, {self.num_units}): "
                "CosyVoice2 units are speech_tokenizer_v2 ids; specials (BOS/EOS/PAD) must be "
                "stripped before vocoding"
            )
        return values.astype(np.int64).tolist()

    def _render(self, units: list[int], finalize: bool) -> np.ndarray:
        """Flow + HiFT over `units` -> float32 audio at 16 kHz (without the last look-ahead units if not final)."""
        tokens = torch.tensor([units], dtype=torch.int32, device=self.device)
        mel = self.flow.inference(
            tokens,
            self.prompt.tokens,
            self.prompt.feat,
            self.prompt.embedding,
            n_timesteps=self.n_timesteps,
            finalize=finalize,
        )
        if mel.size(2) == 0:
            return np.zeros(0, dtype=np.float32)
        generator = torch.Generator().manual_seed(HIFT_SEED)
        wave = self.hift.inference(mel, generator=generator)[0].float().cpu().numpy()
        rate = self.config.sample_rate
        if rate != SAMPLE_RATE:
            step = math.gcd(rate, SAMPLE_RATE)
            wave = resample_poly(wave, SAMPLE_RATE // step, rate // step)
        return np.clip(wave, -1.0, 1.0).astype(np.float32)


def _splice(
    wave: np.ndarray, emitted: int, pending: np.ndarray, end: int | None, hold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Next chunk from a re-run `wave` of the whole prefix, and the new held-back tail.

    `pending` is the previous run's audio for [emitted, emitted + len(pending)); it is cross-faded (raised
    cosine) into this run's audio for the same span. The chunk then runs to `end` (None: the end of `wave`)
    minus `hold` samples, which are returned as the new pending tail.
    """
    start = emitted + pending.size
    end = wave.size if end is None else end
    keep = max(0, min(hold, end - start))
    overlap = wave[emitted:start]
    if pending.size:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(pending.size) + 0.5) / pending.size)
        overlap = (pending * (1.0 - ramp) + overlap * ramp).astype(np.float32)
    return np.concatenate([overlap, wave[start : end - keep]]), wave[end - keep : end].copy()
