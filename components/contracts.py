"""Names shared by every stage, defined once (STYLE.md rule 3).

Emotion labels, manifest columns, artifact file names and Triton tensor names live here so that the
synthesizer, the trainer, the evaluator, the Triton model and the client can never disagree.
"""

from __future__ import annotations

# Audio everywhere in the platform is mono 16 kHz, the rate Whisper's front end expects.
SAMPLE_RATE = 16_000

# The six basic emotions the paper's data covers; a user utterance carries exactly one.
USER_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "surprised")

# Emotions the assistant answers with. Kept apart from USER_EMOTIONS because empathy is not mirroring:
# an angry user gets a calm or apologetic reply, not an angry one.
RESPONSE_EMOTIONS: tuple[str, ...] = (
    "neutral",
    "cheerful",
    "excited",
    "comforting",
    "apologetic",
    "calm",
    "reassuring",
)

# Which reply emotions fit each user emotion, with sampling weights. The synthesizer draws from this;
# evaluation treats the drawn one as the reference, so a model can at best match the weights' mode.
EMPATHY_MAP: dict[str, tuple[tuple[str, float], ...]] = {
    "neutral": (("neutral", 0.8), ("cheerful", 0.2)),
    "happy": (("cheerful", 0.7), ("excited", 0.3)),
    "sad": (("comforting", 0.85), ("calm", 0.15)),
    "angry": (("apologetic", 0.7), ("calm", 0.3)),
    "fearful": (("reassuring", 0.8), ("calm", 0.2)),
    "surprised": (("excited", 0.6), ("cheerful", 0.4)),
}

DOMAINS: tuple[str, ...] = (
    "work",
    "family",
    "health",
    "travel",
    "shopping",
    "school",
    "money",
    "friends",
    "relationships",
    "home",
    "pets",
    "sports",
    "food",
    "technology",
    "weather",
    "hobbies",
    "entertainment",
    "commute",
    "neighbors",
    "bureaucracy",
)

# "test" is in-distribution: the training voices saying unseen dialogues. UNSEEN_VOICE_SPLIT is spoken only by
# voices that never speak a training turn (synthesis.taxonomy.HELD_OUT_SPEAKERS): does the model hear emotion,
# or the voices it trained on?
UNSEEN_VOICE_SPLIT = "test_unseen_voice"
SPLITS: tuple[str, ...] = ("train", "test", UNSEEN_VOICE_SPLIT)

# One row of the dataset manifest (manifest.jsonl), in column order. Paths are relative to the dataset root.
# user_channel: the channel effects the user turn went through (components/audio/channels.py), as compact JSON;
# "" is clean, and a manifest written before channels existed reads as all clean.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "id",
    "split",
    "domain",
    "speaker",
    "user_emotion",
    "user_text",
    "user_wav",
    "user_duration_s",
    "user_channel",
    "response_emotion",
    "response_text",
    "response_wav",
    "response_duration_s",
)

# Files inside a dataset directory.
MANIFEST_FILE = "manifest.jsonl"
DATASET_CARD_FILE = "README.md"
DATASET_STATS_FILE = "card.json"

# Files inside an exported model directory (the unit MLflow registers and Triton serves).
MODEL_CONFIG_FILE = "config.json"
MODEL_WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"

# A training run directory (components/training), read by the registry step and the summary as well.
TRAIN_CONFIG_FILE = "train_config.json"
TRAIN_MODEL_DIR = "model"  # RUN/model: the exported model (config.json, model.safetensors, tokenizer.json)
TRAIN_LOG_FILE = "train_log.jsonl"  # per-step losses, JSON lines, written by rank 0
LOSS_CURVE_FILE = "loss_curve.png"  # drawn from TRAIN_LOG_FILE when the run ends
TRAIN_SUMMARY_FILE = "train_summary.json"

# Files inside a speech-units directory (the pipeline's speech-units step; stage 2 trains on it).
SPEECH_UNITS_FILE = "units.jsonl"  # {"id": manifest row id, "units": [...]} per reply
UNIT_EXTRACTOR_FILE = "unit_extractor.safetensors"  # the k-means centroids and normalisation
TOKEN2WAV_CONFIG_FILE = "token2wav_config.json"  # the EmotionOmniToken2WavConfig the units belong to
SPEECH_UNITS_CARD_FILE = "units_card.json"  # what was fitted, how long it took, how well it resynthesises

# Triton's ports as `omni serve` opens them by default and the clients look for them (Triton's own defaults).
TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT = 8000, 8001, 8002

# Triton: the model's name and its tensors, identical in config.pbtxt, model.py and the client.
TRITON_MODEL_NAME = "emotion_omni"
INPUT_AUDIO = "AUDIO"  # BYTES [1]: a WAV file's bytes (any rate; resampled to 16 kHz)
OUTPUT_RESPONSE_TEXT = "RESPONSE_TEXT"  # BYTES [1]: UTF-8 reply text
OUTPUT_RESPONSE_EMOTION = "RESPONSE_EMOTION"  # BYTES [1]: one of RESPONSE_EMOTIONS
OUTPUT_USER_EMOTION = "USER_EMOTION"  # BYTES [1]: one of USER_EMOTIONS
OUTPUT_EMOTION_VECTOR = "EMOTION_VECTOR"  # FP32 [E]: the predicted response-emotion embedding
# BYTES [1]: 16 kHz mono WAV bytes of the model's own spoken reply (talker + token2wav); b"" when there is none
OUTPUT_RESPONSE_AUDIO = "RESPONSE_AUDIO"
OUTPUT_SPEECH_NOTE = "SPEECH_NOTE"  # BYTES [1]: why RESPONSE_AUDIO is empty (UTF-8); b"" when it is not

# Custom metrics the Triton model exports beside Triton's own nv_* series (pb_utils.MetricFamily). Triton counts
# an error response from model.py (bad audio, a model bug) as nv_inference_request_success, so outcomes are
# counted here; the chart's alerts and dashboard read these names. Every series has labels model and version.
METRIC_REQUESTS = "emotion_omni_requests_total"  # counter; labels outcome, reason
METRIC_REPLY_SECONDS = "emotion_omni_reply_seconds"  # histogram: request in -> whole reply encoded
METRIC_AUDIO_SECONDS = "emotion_omni_audio_seconds_total"  # counter; label direction: in (user) | out (reply)
METRIC_REPLY_EMOTIONS = "emotion_omni_reply_emotions_total"  # counter; label emotion (one of RESPONSE_EMOTIONS)
OUTCOME_SUCCESS, OUTCOME_ERROR = "success", "error"
# Why a request failed: the caller's audio, or the model (a bug: its traceback is in the server log).
ERROR_BAD_AUDIO, ERROR_INFERENCE = "bad_audio", "inference_error"
NO_ERROR = "none"  # the reason label of successful requests
REPLY_SECONDS_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

# The streaming twin (decoupled, gRPC streaming): same weights and model.py; per request it sends the text and
# emotions first (the outputs above but RESPONSE_AUDIO), then the reply's audio chunk by chunk, then a final flag.
TRITON_STREAM_MODEL_NAME = "emotion_omni_stream"
OUTPUT_AUDIO_CHUNK = "AUDIO_CHUNK"  # FP32 [-1]: the next piece of the spoken reply, 16 kHz samples
METRIC_FIRST_AUDIO_SECONDS = "emotion_omni_first_audio_seconds"  # histogram: request in -> first audio chunk out
OUTCOME_CANCELLED = "cancelled"  # a streaming client went away; generation stopped

# Deploying a version: Triton's repository API (load/unload) is restricted to requests carrying this header, whose
# value comes from this environment variable (a Kubernetes Secret key of the same name on clusters; the chart's
# restrictedApi.header and restrictedApi.secretKey defaults).
TRITON_ADMIN_HEADER = "triton-admin-key"
TRITON_ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"
# A version is smoke-tested under this name before it serves as TRITON_MODEL_NAME (a separate model, so no request
# of a caller can reach a version that has not passed).
TRITON_CANDIDATE_MODEL_NAME = "emotion_omni_candidate"
DEPLOYMENTS_FILE = "deployments.json"  # in a local serving repository: which version serves, and each deploy's outcome
PRODUCTION_ALIAS = "production"  # MLflow alias of the version serving in production; moved after a verified rollout

# Requests larger than this are refused before decoding: 30 s of 16-bit 48 kHz stereo plus headers.
MAX_AUDIO_BYTES = 6 * 1024 * 1024

# Scalar evaluation metrics: the keys of EvalResult.summary(), the KFP Metrics artifact, the MLflow run and
# the promotion gate. Accuracies and F1 are fractions in [0, 1]; chrF is 0-100; latencies are milliseconds.
METRIC_NUM_SAMPLES = "num_samples"
METRIC_USER_EMOTION_ACCURACY = "user_emotion_accuracy"
METRIC_USER_EMOTION_MACRO_F1 = "user_emotion_macro_f1"
METRIC_RESPONSE_EMOTION_ACCURACY = "response_emotion_accuracy"
METRIC_CHRF = "chrf"
METRIC_LATENCY_P50_MS = "latency_p50_ms"
METRIC_LATENCY_P95_MS = "latency_p95_ms"
METRIC_LATENCY_MEAN_MS = "latency_mean_ms"

# The same text metrics on UNSEEN_VOICE_SPLIT (voices no training turn used), and the in-distribution accuracy
# minus the unseen-voice one: how much of the recognition was the voices rather than the emotion.
METRIC_UNSEEN_VOICE_NUM_SAMPLES = "unseen_voice_num_samples"
METRIC_UNSEEN_VOICE_USER_EMOTION_ACCURACY = "unseen_voice_user_emotion_accuracy"
METRIC_UNSEEN_VOICE_USER_EMOTION_MACRO_F1 = "unseen_voice_user_emotion_macro_f1"
METRIC_UNSEEN_VOICE_RESPONSE_EMOTION_ACCURACY = "unseen_voice_response_emotion_accuracy"
METRIC_UNSEEN_VOICE_CHRF = "unseen_voice_chrf"
METRIC_UNSEEN_VOICE_USER_EMOTION_GAP = "unseen_voice_user_emotion_gap"

# Speech metrics (the model's own reply speech, held-out split): fractions in [0, 1], dB, MOS 1-5, ratios.
METRIC_SPEECH_EMOTION_AGREEMENT = "speech_emotion_agreement"  # judge hears the emotion the model chose
METRIC_SPEECH_EMOTION_REFERENCE = "speech_emotion_reference_agreement"  # ... the reference reply's emotion
METRIC_SPEECH_JUDGE_ACCURACY = "speech_judge_accuracy"  # the judge itself, on reference replies
METRIC_RESYNTHESIS_STOI = "resynthesis_stoi"  # reference units -> token2wav vs reference
METRIC_RESYNTHESIS_MCD_DB = "resynthesis_mcd_db"
METRIC_MCD_DB = "mcd_db"  # talker speaking the reference text, DTW
METRIC_PITCH_ORDER_SPEARMAN = "pitch_order_spearman"  # per-emotion median pitch, generated vs ref
METRIC_DNSMOS_OVRL = "dnsmos_ovrl"  # stand-in for UTMOS (speechmos)
METRIC_DNSMOS_SIG = "dnsmos_sig"
METRIC_DNSMOS_BAK = "dnsmos_bak"
METRIC_UTMOS = "utmos"  # the paper's MOS, from a local checkpoint
METRIC_SPEECH_RTF = "speech_real_time_factor"  # talker + vocoder seconds per audio second
METRIC_SPEECH_SILENT_FRACTION = "speech_silent_fraction"  # replies that got no audio

# Reply text beyond chrF: cosine similarity (-1..1) of sentence embeddings (all-MiniLM-L6-v2) between the reply and
# the reference reply, and between the reply and the user's words; and the empathy judge's mean 1-5 score (an
# OpenAI-compatible LLM scoring each reply on a written rubric, after the paper's Emotion GPT Score).
METRIC_RELEVANCE_REFERENCE = "relevance_reference"
METRIC_RELEVANCE_USER = "relevance_user"
METRIC_EMPATHY_SCORE = "empathy_score"

# Files inside an evaluation report directory.
REPORT_METRICS_FILE = "metrics.json"
REPORT_MARKDOWN_FILE = "report.md"
REPORT_HTML_FILE = "report.html"
SPEECH_METRICS_FILE = "speech_metrics.json"  # the speech section's detail (per emotion, not-computed reasons)
SPEECH_JUDGE_FILE = "speech_emotion_judge.json"
RELEVANCE_FILE = "relevance.json"  # per-reply relevance, the least relevant first
EMPATHY_JUDGE_FILE = "empathy_judge.json"  # per-reply judge scores and reasons, or why it was not computed
GATE_FILE = "gate.json"  # the gate's decision: floors, the comparison with the champion

# Lineage: one ID (the KFP run's; "local-<utc time>" outside KFP) ties a pipeline run to its MLflow run and model
# version, the TrainJob, the published Triton repository and the S3 path.
LINEAGE_TAG = "omni.lineage_id"  # MLflow run / logged model / model version tag
LINEAGE_LABEL = "empathy-omni.io/lineage-id"  # Kubernetes label on TrainJobs
LINEAGE_FILE = "lineage.json"  # beside a published Triton version: the whole chain
MODEL_CARD_FILE = "MODEL_CARD.md"  # per registered version: data, metrics, gate decision, known limits
