"""A model card per registered version: what it was trained on, how it scored, why the gate decided, and its limits.

Written at registration and kept with the version (an MLflow run artifact and the version's description) and
beside each published Triton version, so whoever serves or audits a version reads the same page.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.registry.gate import GateDecision

# What every version of this model cannot do, whatever its scores: the reader should not have to infer it.
KNOWN_LIMITS = (
    "Trained and evaluated on synthetic dialogues: user turns spoken by rule-based TTS engines (espeak-ng, flite, "
    "festival) with prosody and channel effects, not by people. Scores on real voices are not measured.",
    "English only; six user emotions and seven reply emotions (components.contracts).",
    "Reply quality is measured by chrF and embedding relevance against one reference reply; empathy by an LLM judge "
    "only when one is configured; speech quality by DNSMOS, a stand-in for the paper's UTMOS.",
    "The speech-emotion agreement is judged by a classifier trained on the same TTS engines' speech.",
)


@dataclass
class CardInputs:
    model_name: str
    version: str
    lineage_id: str
    run_id: str
    dataset: dict  # the dataset's card.json (components.synthesis.card)
    split: dict  # {"name", "rows", "fingerprint"} of the evaluation (components.evaluation.split)
    metrics: dict[str, float]  # the evaluation summary
    not_computed: dict[str, str]  # metric -> why it is absent
    training: list[dict]  # one train_summary.json per stage
    decision: GateDecision


def model_card(card: CardInputs) -> str:
    """The card as Markdown."""
    generator, counts = card.dataset.get("generator", {}), card.dataset.get("counts", {})
    lines = [
        f"# {card.model_name} v{card.version}",
        "",
        f"- lineage ID: `{card.lineage_id}` (the pipeline run; `omni lineage {card.lineage_id}`)",
        f"- MLflow run: `{card.run_id}`",
        "",
        "## Data",
        "",
        f"- {card.dataset.get('n_dialogues', '?')} synthetic dialogues, seed {card.dataset.get('seed', '?')}, "
        f"text from the {generator.get('text', '?')} backend",
        f"- splits: {', '.join(f'{k} {v}' for k, v in counts.get('split', {}).items())}",
        f"- voices held out for the unseen-voice split: {', '.join(generator.get('held_out_speakers', [])) or '-'}",
        f"- evaluated on split `{card.split.get('name', '?')}` ({card.split.get('rows', '?')} turns with the "
        f"unseen-voice split), fingerprint `{card.split.get('fingerprint', '?')}`",
        "",
        "## Training",
        "",
    ]
    for stage in card.training:
        lines.append(
            f"- stage {stage.get('stage', '?')}: {stage.get('steps', '?')} steps, "
            f"{stage.get('trainable_parameters', 0):,} of {stage.get('parameters', 0):,} parameters trained, "
            f"ZeRO-{stage.get('zero_stage', '?')} x {stage.get('world_size', '?')} ranks"
        )
    lines += ["", "## Evaluation", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4g} |" for k, v in card.metrics.items()]
    lines += [f"| {k} | not computed: {why} |" for k, why in card.not_computed.items()]
    lines += ["", "## Gate", "", *[f"    {line}" for line in card.decision.lines()], "", "## Known limits", ""]
    lines += [f"- {limit}" for limit in KNOWN_LIMITS] + [""]
    return "\n".join(lines)
