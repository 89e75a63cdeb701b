"""Step 1 of the pipeline: a synthesized emotional spoken-dialogue dataset (template or LLM text, three TTS engines)."""

from components.synthesis.config import SynthesisConfig
from components.synthesis.dataset import (
    DatasetSummary,
    merge_parts,
    plan_parts,
    synthesize_dataset,
    synthesize_part,
)
from components.synthesis.manifest import ManifestError, read_manifest, write_manifest
from components.synthesis.shards import SynthesisError
from components.synthesis.speech import EspeakSpeech, SpeechConfig, SpeechError

__all__ = [
    "DatasetSummary",
    "EspeakSpeech",
    "ManifestError",
    "SpeechConfig",
    "SpeechError",
    "SynthesisConfig",
    "SynthesisError",
    "merge_parts",
    "plan_parts",
    "read_manifest",
    "synthesize_dataset",
    "synthesize_part",
    "write_manifest",
]
