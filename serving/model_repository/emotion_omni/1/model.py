"""Triton python-backend model for Emotion Omni: WAV bytes in, reply text + emotions + the model's own speech out.

One of a trio with ../config.pbtxt and serving/client.py; tensor names come from components.contracts. The same
file also serves emotion_omni_stream (decoupled; serving/stream_client.py): text first, then audio chunks.
This file only adapts tensors and counts outcomes: decoding, inference and encoding live in `components`. Project
imports sit inside the methods so the file imports anywhere (the stub imports it before initialize runs).
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
        # Output names and dtypes come from config.pbtxt (emotion_omni's or emotion_omni_stream's), so a config
        # edit cannot silently disagree with this file.
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in model_config["output"]}
        self.output_names = tuple(self.dtypes)

        weights_param = model_config.get("parameters", {}).get("weights_dir", {}).get("string_value")
        if not weights_param:
            raise pb_utils.TritonModelException(
                'config.pbtxt has no parameters { key: "weights_dir" }; it names the exported model '
                'directory relative to the version directory, e.g. "weights"'
            )
        weights_dir = Path(args["model_repository"]) / args["model_version"] / weights_param
        try:
            # KIND_GPU in config.pbtxt (build_model_repository(..., instance_kind="gpu")) -> cuda:<device id>.
            device = instance_device(args["model_instance_kind"], args["model_instance_device_id"])
        except (ValueError, RuntimeError) as err:
            raise pb_utils.TritonModelException(str(err)) from err
        self.metrics = _Metrics(contracts, args["model_name"], args["model_version"])
        # The same file serves emotion_omni (one response per request, batched) and emotion_omni_stream
        # (decoupled: text first, then audio chunks); config.pbtxt's transaction policy says which this is.
        self.streaming = pb_utils.using_decoupled_model_transaction_policy(model_config)
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

        if self.streaming:
            for request in requests:
                self._stream(request)
            return None  # decoupled: every response went through the request's sender
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

    def _stream(self, request):
        """Text and emotions first, then the reply's audio chunk by chunk as it is made, then the final flag.
        Bad audio gets one error response (flagged final); a cancelled request stops the generation."""
        from components.audio.io import AudioError, decode_wav

        c, final = self.c, pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        sender, start = request.get_response_sender(), time.monotonic()
        if sender.is_cancelled():  # the caller left while the request waited in Triton's queue
            self.metrics.cancelled()
            sender.send(flags=final)
            return
        audio = pb_utils.get_input_tensor_by_name(request, c.INPUT_AUDIO).as_numpy().reshape(-1)
        try:
            wave = decode_wav(bytes(audio[0]))
        except AudioError as err:
            sender.send(_error(f"{c.INPUT_AUDIO}: {err}", pb_utils.TritonError.INVALID_ARG), flags=final)
            self.metrics.failed(c.ERROR_BAD_AUDIO)
            return
        try:
            reply, chunks = self.responder.stream_speech(wave)
            head = self._fields(reply, [name for name in self.output_names if name != c.OUTPUT_AUDIO_CHUNK])
            sender.send(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(name, np.array(value, dtype=self.dtypes[name])) for name, value in head.items()
                    ]
                )
            )
            spoken = []
            for chunk in chunks:  # each next() runs the talker for a chunk of units and vocodes it
                if sender.is_cancelled():
                    self.metrics.cancelled()
                    break
                if not spoken:
                    self.metrics.first_audio(time.monotonic() - start)
                spoken.append(chunk)
                sender.send(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor(c.OUTPUT_AUDIO_CHUNK, np.asarray(chunk, dtype=np.float32).reshape(-1))
                        ]
                    )
                )
            else:
                reply.audio = np.concatenate(spoken) if spoken else reply.audio
                self.metrics.answered([wave], [reply], time.monotonic() - start)
            sender.send(flags=final)
        except Exception as err:  # a model bug: this request's stream ends with the reason
            pb_utils.Logger.log_error(f"emotion_omni streaming failed:\n{traceback.format_exc()}")
            sender.send(_error(f"emotion_omni inference failed: {type(err).__name__}: {err}"), flags=final)
            self.metrics.failed(c.ERROR_INFERENCE)

    def _to_tensors(self, replies):
        """Batched output tensors, (B, ...) each, in config.pbtxt's order."""
        rows = [self._fields(reply, self.output_names) for reply in replies]
        return [
            pb_utils.Tensor(name, np.array([row[name] for row in rows], dtype=self.dtypes[name]))
            for name in self.output_names
        ]

    def _fields(self, reply, names):
        """One reply's output values by tensor name, without a batch dimension; only `names` are computed."""
        from components.audio.io import encode_wav

        c = self.c
        makers = {
            c.OUTPUT_RESPONSE_TEXT: lambda: [reply.text.encode("utf-8")],
            c.OUTPUT_RESPONSE_EMOTION: lambda: [reply.response_emotion.encode("utf-8")],
            c.OUTPUT_USER_EMOTION: lambda: [reply.user_emotion.encode("utf-8")],
            c.OUTPUT_EMOTION_VECTOR: lambda: np.asarray(reply.emotion_vector).reshape(-1),
            # A reply with nothing to say has no speech; b"" says so rather than a WAV with zero samples, and
            # SPEECH_NOTE says why.
            c.OUTPUT_RESPONSE_AUDIO: lambda: [encode_wav(reply.audio) if reply.audio.size else b""],
            c.OUTPUT_SPEECH_NOTE: lambda: [reply.speech_note.encode("utf-8")],
        }
        return {name: makers[name]() for name in names}


class _Metrics:
    """The model's own Prometheus series (names in contracts.py), on Triton's metrics port beside nv_*."""

    def __init__(self, c, model, version):
        self.c, labels = c, {"model": model, "version": str(version)}
        family = pb_utils.MetricFamily
        requests = family(c.METRIC_REQUESTS, "Requests by outcome and error reason", family.COUNTER)
        self._success = requests.Metric(labels={**labels, "outcome": c.OUTCOME_SUCCESS, "reason": c.NO_ERROR})
        self._errors = {
            reason: requests.Metric(labels={**labels, "outcome": c.OUTCOME_ERROR, "reason": reason})
            for reason in (c.ERROR_BAD_AUDIO, c.ERROR_INFERENCE)
        }  # created now: 0 before the first
        latency = family(
            c.METRIC_REPLY_SECONDS, "Seconds from request to whole reply (text and audio)", family.HISTOGRAM
        )
        self._latency = latency.Metric(labels=labels, buckets=list(c.REPLY_SECONDS_BUCKETS))
        audio = family(c.METRIC_AUDIO_SECONDS, "Seconds of audio heard (in) and spoken (out)", family.COUNTER)
        self._audio = {d: audio.Metric(labels={**labels, "direction": d}) for d in ("in", "out")}
        emotions = family(c.METRIC_REPLY_EMOTIONS, "Replies by the emotion chosen", family.COUNTER)
        self._emotions = {e: emotions.Metric(labels={**labels, "emotion": e}) for e in c.RESPONSE_EMOTIONS}
        self._cancelled = requests.Metric(labels={**labels, "outcome": c.OUTCOME_CANCELLED, "reason": c.NO_ERROR})
        first = family(
            c.METRIC_FIRST_AUDIO_SECONDS, "Seconds from request to the first audio chunk (streaming)", family.HISTOGRAM
        )
        self._first_audio = first.Metric(labels=labels, buckets=list(c.REPLY_SECONDS_BUCKETS))
        # Held for the model's lifetime: a family garbage-collected before its metrics makes them unusable.
        self._families = (requests, latency, audio, emotions, first)

    def failed(self, reason):
        self._errors[reason].increment(1)

    def cancelled(self):
        self._cancelled.increment(1)

    def first_audio(self, seconds):
        self._first_audio.observe(seconds)

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
