"""Triton python-backend model for Emotion Omni: WAV bytes in, reply text + emotions + the model's own speech out.

One of a trio with ../config.pbtxt and serving/client.py; tensor names come from components.contracts.
This file only adapts tensors: decoding, inference and encoding live in `components`. Project imports
sit inside the methods so the file imports anywhere (the stub imports it before initialize runs).
"""
import json
import time
import traceback
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        """Load the responder from <version dir>/<weights_dir>; raising here fails the model load."""
        try:
            from components import contracts
            from components.inference import EmotionOmniResponder, instance_device
        except ImportError as err:
            raise pb_utils.TritonModelException(
                f"the python-backend stub cannot import the project ({err}). Start tritonserver with "
                "serving.launcher.TritonServer, which puts the venv's python3 first on PATH, or install "
                "empathy-omni into the Python the stub embeds"
            ) from err

        self.c = contracts
        model_config = json.loads(args["model_config"])
        self.output_names = (
            contracts.OUTPUT_RESPONSE_TEXT, contracts.OUTPUT_RESPONSE_EMOTION, contracts.OUTPUT_USER_EMOTION,
            contracts.OUTPUT_EMOTION_VECTOR, contracts.OUTPUT_RESPONSE_AUDIO, contracts.OUTPUT_SPEECH_NOTE,
        )
        # dtypes come from config.pbtxt, so a config edit cannot silently disagree with this file.
        self.dtypes = {
            name: pb_utils.triton_string_to_numpy(pb_utils.get_output_config_by_name(model_config, name)["data_type"])
            for name in self.output_names
        }

        weights_param = model_config.get("parameters", {}).get("weights_dir", {}).get("string_value")
        if not weights_param:
            raise pb_utils.TritonModelException(
                "config.pbtxt has no parameters { key: \"weights_dir\" }; it names the exported model "
                "directory relative to the version directory, e.g. \"weights\""
            )
        weights_dir = Path(args["model_repository"]) / args["model_version"] / weights_param
        try:
            # KIND_GPU in config.pbtxt (build_model_repository(..., instance_kind="gpu")) -> cuda:<device id>.
            device = instance_device(args["model_instance_kind"], args["model_instance_device_id"])
        except (ValueError, RuntimeError) as err:
            raise pb_utils.TritonModelException(str(err)) from err
        self.metrics = _Metrics(contracts, args["model_name"], args["model_version"])
        if device == "cpu":  # the instances of this model split the cores the pod may use, not the node's
            from components.cpu import fit_torch_threads

            instances = sum(int(g.get("count", 1)) for g in model_config.get("instance_group", [])) or 1
            fit_torch_threads(share=instances)
        try:
            self.responder = EmotionOmniResponder.from_pretrained(weights_dir, device=device)
        except Exception as err:
            raise pb_utils.TritonModelException(
                f"could not load Emotion Omni from {weights_dir}: {type(err).__name__}: {err}. "
                "Rebuild the repository with serving.repository.build_model_repository(<exported model dir>, ...)"
            ) from err

    def execute(self, requests):
        """One response per request: decode each, run the decodable ones as one batch, encode back.

        A request whose audio is bad gets its own INVALID_ARG error; the rest of the batch still runs.
        """
        from components.audio.io import AudioError, decode_wav

        start = time.monotonic()
        responses = [None] * len(requests)
        waves = {}  # request index -> its decoded utterances, each (T,) float32 16 kHz
        for i, request in enumerate(requests):
            audio = pb_utils.get_input_tensor_by_name(request, self.c.INPUT_AUDIO).as_numpy()  # (B, 1) bytes
            try:
                waves[i] = [decode_wav(bytes(item)) for item in audio.reshape(-1)]
            except AudioError as err:
                responses[i] = _error(f"{self.c.INPUT_AUDIO}: {err}", pb_utils.TritonError.INVALID_ARG)
                self.metrics.failed(self.c.ERROR_BAD_AUDIO)

        if waves:
            try:
                # One generate() call for everything Triton batched together: that is what batching buys.
                replies = iter(self.responder.respond_batch([w for ws in waves.values() for w in ws]))
                for i, ws in waves.items():
                    mine = [next(replies) for _ in ws]
                    responses[i] = pb_utils.InferenceResponse(output_tensors=self._to_tensors(mine))
                    self.metrics.answered(ws, mine, time.monotonic() - start)
            except Exception as err:  # a model bug: report it on every request still unanswered
                pb_utils.Logger.log_error(f"emotion_omni inference failed:\n{traceback.format_exc()}")
                for i in waves:
                    if responses[i] is None:
                        responses[i] = _error(f"emotion_omni inference failed: {type(err).__name__}: {err}")
                        self.metrics.failed(self.c.ERROR_INFERENCE)
        return responses

    def _to_tensors(self, replies):
        from components.audio.io import encode_wav

        c, dt = self.c, self.dtypes
        columns = {
            c.OUTPUT_RESPONSE_TEXT: [[r.text.encode("utf-8")] for r in replies],  # (B, 1)
            c.OUTPUT_RESPONSE_EMOTION: [[r.response_emotion.encode("utf-8")] for r in replies],
            c.OUTPUT_USER_EMOTION: [[r.user_emotion.encode("utf-8")] for r in replies],
            c.OUTPUT_EMOTION_VECTOR: [np.asarray(r.emotion_vector).reshape(-1) for r in replies],  # (B, E)
            # A reply with nothing to say has no speech; b"" says so rather than a WAV with zero samples, and
            # SPEECH_NOTE says why.
            c.OUTPUT_RESPONSE_AUDIO: [[encode_wav(r.audio) if r.audio.size else b""] for r in replies],
            c.OUTPUT_SPEECH_NOTE: [[r.speech_note.encode("utf-8")] for r in replies],
        }
        return [pb_utils.Tensor(name, np.array(columns[name], dtype=dt[name])) for name in self.output_names]


class _Metrics:
    """The model's own Prometheus series (names in contracts.py), on Triton's metrics port beside nv_*."""

    def __init__(self, c, model, version):
        self.c, labels = c, {"model": model, "version": str(version)}
        family = pb_utils.MetricFamily
        requests = family(c.METRIC_REQUESTS, "Requests by outcome and error reason", family.COUNTER)
        self._success = requests.Metric(labels={**labels, "outcome": c.OUTCOME_SUCCESS, "reason": c.NO_ERROR})
        self._errors = {reason: requests.Metric(labels={**labels, "outcome": c.OUTCOME_ERROR, "reason": reason})
                        for reason in (c.ERROR_BAD_AUDIO, c.ERROR_INFERENCE)}  # created now: 0 before the first
        latency = family(c.METRIC_REPLY_SECONDS, "Seconds from request to whole reply (text and audio)",
                         family.HISTOGRAM)
        self._latency = latency.Metric(labels=labels, buckets=list(c.REPLY_SECONDS_BUCKETS))
        audio = family(c.METRIC_AUDIO_SECONDS, "Seconds of audio heard (in) and spoken (out)", family.COUNTER)
        self._audio = {d: audio.Metric(labels={**labels, "direction": d}) for d in ("in", "out")}
        emotions = family(c.METRIC_REPLY_EMOTIONS, "Replies by the emotion chosen", family.COUNTER)
        self._emotions = {e: emotions.Metric(labels={**labels, "emotion": e}) for e in c.RESPONSE_EMOTIONS}
        # Held for the model's lifetime: a family garbage-collected before its metrics makes them unusable.
        self._families = (requests, latency, audio, emotions)

    def failed(self, reason):
        self._errors[reason].increment(1)

    def answered(self, waves, replies, seconds):
        self._success.increment(1)
        self._latency.observe(seconds)
        self._audio["in"].increment(sum(w.size for w in waves) / self.c.SAMPLE_RATE)
        self._audio["out"].increment(sum(r.audio.size for r in replies) / self.c.SAMPLE_RATE)
        for reply in replies:
            self._emotions[reply.response_emotion].increment(1)


def _error(message, code=None):
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(error=error)
