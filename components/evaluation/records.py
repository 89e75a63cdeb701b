"""PredictionRecord: one test utterance's reference next to what the model produced for it.

The evaluation loop builds one record per test-split row of the manifest; everything downstream
(metrics, plots, reports) reads only these records, so it can be tested without a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PredictionRecord:
    id: str  # the manifest row's id, so a bad prediction can be traced to its clip
    user_emotion: str  # reference, one of contracts.USER_EMOTIONS
    predicted_user_emotion: str  # model output, one of contracts.USER_EMOTIONS
    response_emotion: str  # reference, one of contracts.RESPONSE_EMOTIONS
    predicted_response_emotion: str  # model output, one of contracts.RESPONSE_EMOTIONS
    reference_text: str  # the manifest's response_text
    predicted_text: str  # the model's reply text
    latency_s: float  # wall-clock seconds from audio in to reply out, for this one utterance
    user_text: str = ""  # the manifest's user_text: what the user said (relevance, the empathy judge)
