"""Dataset statistics (DATASET_STATS_FILE, JSON) and the human-readable dataset card (DATASET_CARD_FILE).

Both are computed from the manifest rows alone, so the card can never disagree with the data.
"""

from __future__ import annotations

from collections import Counter

from components.audio.channels import channel_from_json
from components.contracts import DOMAINS, MANIFEST_FILE, RESPONSE_EMOTIONS, SAMPLE_RATE, SPLITS, USER_EMOTIONS
from components.synthesis.taxonomy import speaker_engine

CARD_PLOTS_DIR = "card"  # the card's figures, beside it

# Columns counted in the stats, each with its label order (contract order, so cards diff cleanly).
_COUNTED: dict[str, tuple[str, ...]] = {
    "split": SPLITS,
    "user_emotion": USER_EMOTIONS,
    "response_emotion": RESPONSE_EMOTIONS,
    "domain": DOMAINS,
}


def dataset_stats(rows: list[dict], *, seed: int, generator: dict, filters: dict | None = None) -> dict:
    """Counts per label (and user emotion per split), speakers, and audio hours for manifest rows.

    `generator` records how the data was made (backend, config) and `filters` what the filters dropped and why
    (filters.FilterReport.summary()); both are copied into the stats verbatim.
    """
    counts = {column: _ordered(Counter(row[column] for row in rows), labels) for column, labels in _COUNTED.items()}
    counts["speaker"] = dict(sorted(Counter(row["speaker"] for row in rows).items()))
    counts["engine"] = dict(sorted(Counter(speaker_engine(row["speaker"]) for row in rows).items()))
    effects = Counter(e["effect"] for row in rows for e in channel_from_json(row["user_channel"]))
    counts["user_channel"] = {"clean": sum(not row["user_channel"] for row in rows), **dict(sorted(effects.items()))}
    by_split = {
        split: _ordered(Counter(r["user_emotion"] for r in rows if r["split"] == split), USER_EMOTIONS)
        for split in SPLITS
    }
    user_s = sum(row["user_duration_s"] for row in rows)
    response_s = sum(row["response_duration_s"] for row in rows)
    return {
        "n_dialogues": len(rows),
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "generator": generator,
        "filters": filters,
        "counts": counts,
        "user_emotion_by_split": by_split,
        "audio_hours": {
            "user": round(user_s / 3600, 4),
            "response": round(response_s / 3600, 4),
            "total": round((user_s + response_s) / 3600, 4),
        },
    }


def render_card(stats: dict, examples: list[dict], plots: dict[str, str] | None = None) -> str:
    """The dataset card as Markdown: what the data is, how it was made, what the filters dropped, its counts and
    `plots` (name -> path relative to the card, from card_plots.write_card_plots)."""
    hours = stats["audio_hours"]
    lines = [
        "# Emotion Omni synthetic empathetic-dialogue dataset",
        "",
        f"{stats['n_dialogues']} single-turn spoken dialogues. In each, a user says something with one of "
        f"{len(USER_EMOTIONS)} emotions about one of {len(DOMAINS)} everyday domains, and the assistant answers "
        "with an empathetic text reply, a reply emotion, and that reply spoken in that emotion.",
        "",
        "## How it was made",
        "",
        _text_line(stats["generator"].get("text", "template")),
        "- Reply emotion: drawn per dialogue from `EMPATHY_MAP` with its weights (`components/contracts.py`).",
        f"- User speech: {len(stats['counts']['speaker'])} voices of {len(stats['counts']['engine'])} TTS engines "
        f"({', '.join(stats['counts']['engine'])}; `components/synthesis/engines.py`). Each speaks the text "
        "neutrally; the emotion is then the same sox transform for every engine (pitch shift, tempo, gain and "
        "treble tilt from the emotion's profile, plus tremolo for fearful, overdrive for angry, low-pass for sad). "
        "Every turn gets its own virtual speaker: seeded pitch, vocal-tract length, rate and level.",
        "- Reply speech: espeak-ng's one assistant voice with a prosody profile per emotion (pitch, pitch range, "
        "rate, amplitude, word gap) plus the same sox effects, with seeded per-utterance jitter (`speech.py`).",
        _channels_line(stats["counts"]["user_channel"], stats["n_dialogues"]),
        "- Splits: stratified by user emotion, so every emotion appears in every split. `test_unseen_voice` is spoken "
        f"only by voices no other split uses ({', '.join(stats['generator'].get('held_out_speakers') or ['none'])}): "
        "it measures recognition of emotion rather than of the training voices.",
        f"- Seed: {stats['seed']}. The same seed and size reproduce the same manifest.",
        f"- Generator settings: `{_inline(stats['generator'])}`",
        "",
        *_filters_section(stats.get("filters")),
        "## Files",
        "",
        f"- `{MANIFEST_FILE}`: one JSON object per dialogue; wav paths are relative to this directory.",
        f"- `wavs/`: {stats['sample_rate']} Hz mono 16-bit PCM WAV, `<id>_user.wav` and `<id>_response.wav`.",
        "",
        "## Counts",
        "",
        f"Audio: {hours['total']:.3f} h in total ({hours['user']:.3f} h user, {hours['response']:.3f} h response).",
        "",
    ]
    for column, counts in stats["counts"].items():
        lines += _table(column, counts) + [""]
    lines += ["| user_emotion | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for emotion in USER_EMOTIONS:
        cells = " | ".join(str(stats["user_emotion_by_split"][split][emotion]) for split in SPLITS)
        lines.append(f"| {emotion} | {cells} |")
    if plots:
        lines += ["", "## Figures", ""] + [f"![{name.replace('_', ' ')}]({path})" for name, path in plots.items()]
    lines += ["", "## Examples", ""]
    for row in examples:
        lines.append(
            f"- ({row['domain']}, {row['user_emotion']} -> {row['response_emotion']}) "
            f'User: "{row["user_text"]}" Assistant: "{row["response_text"]}"'
        )
    lines += [
        "",
        "Synthetic data: the voices are formant and diphone synthesizers, not people; emotions are acted by "
        "rule, so a model trained here learns exaggerated prosody, not natural speech.",
        "",
    ]
    return "\n".join(lines)


def _text_line(text: str) -> str:
    if text.startswith("llm:"):
        return (
            f"- Text: written by the chat model `{text[4:]}` through an OpenAI-compatible endpoint "
            "(`components/synthesis/llm.py`), one dialogue per domain, user emotion and reply emotion, checked "
            "against a JSON schema and word limits."
        )
    return (
        "- Text: a seeded template grammar (`components/synthesis/text.py`, topics in `topics.py`). The user "
        "turn wraps a domain topic in emotion-bearing phrasing; the reply is an opener and a closing picked by "
        "the reply emotion around a sentence about the same topic."
    )


def _filters_section(filters: dict | None) -> list[str]:
    """What each filter (filters.py) dropped and why, and which did not run and why."""
    if filters is None:
        return ["## Filters", "", "None ran: every synthesized dialogue is in the dataset.", ""]
    lines = [
        "## Filters",
        "",
        f"{filters['n_kept']} of {filters['n_in']} dialogues kept (`filters.py`, as in the "
        "paper: audio checks, speech-emotion consistency, ASR word error rate).",
        "",
        "| filter | dropped | note |",
        "|---|---:|---|",
    ]
    consistency = filters.get("emotion_consistency") or {}
    notes = {
        "audio": "duration, silence, clipping and invalid samples, on both turns",
        "emotion_consistency": (
            f"a judge cross-fitted on the user turns heard the intended emotion in "
            f"{consistency['agreement']:.2f} of them"
            if consistency.get("computed")
            else ""
        ),
        "asr_wer": f"a local Whisper transcribed the user turns (WER above {filters['config']['max_wer']})",
    }
    for name, count in filters["dropped_by_filter"].items():
        # A filter that did not run, or ran without dropping, says why in its own words.
        lines.append(f"| {name} | {count} | {filters['skipped'].get(name) or notes[name]} |")
    if filters["dropped_by_reason"]:
        lines += [
            "",
            "Drops by reason: "
            + ", ".join(f"{r} {n}" for r, n in filters["dropped_by_reason"].items())
            + "; by user emotion: "
            + ", ".join(f"{e} {n}" for e, n in filters["dropped_by_user_emotion"].items())
            + ". Every dropped id and its reasons are in the stats file.",
        ]
    return lines + [""]


def _channels_line(channels: dict[str, int], n: int) -> str:
    if channels["clean"] == n:
        return "- Channels: none; every user turn is as the synthesizer made it."
    return (
        f"- Channels: {n - channels['clean']} of {n} user turns went through seeded room, noise, level, clipping, "
        "low-rate, telephone-band or codec effects (`components/audio/channels.py`); each row's `user_channel` "
        "records its chain (the user_channel table below counts clean turns and each effect)."
    )


def _ordered(counter: Counter, labels: tuple[str, ...]) -> dict[str, int]:
    return {label: counter.get(label, 0) for label in labels}


def _table(column: str, counts: dict[str, int]) -> list[str]:
    return [f"| {column} | count |", "|---|---:|", *(f"| {label} | {n} |" for label, n in counts.items())]


def _inline(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())
