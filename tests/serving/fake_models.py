"""Python-backend models the serving tests write themselves, so launcher and client run without a trained model.

Each is served under the real emotion_omni config.pbtxt, which the tests thereby also load in Triton.
"""

from __future__ import annotations

from pathlib import Path

from components.contracts import TRITON_MODEL_NAME
from serving.repository import TEMPLATE_DIR

# Echoes the audio back and reports what it saw as JSON in RESPONSE_TEXT. An empty payload gets its own
# INVALID_ARG error, like the real model. It imports `components` to prove the stub sees the project.
ECHO_MODEL = """
import json
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

from components import contracts as c


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.3)  # requests arriving meanwhile queue up and reach the next execute as one batch
        responses = []
        for request in requests:
            data = bytes(pb_utils.get_input_tensor_by_name(request, c.INPUT_AUDIO).as_numpy().reshape(-1)[0])
            if not data:
                error = pb_utils.TritonError("AUDIO: audio payload is empty (0 bytes)",
                                             pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            facts = {"n_bytes": len(data), "batch": len(requests), "numpy": np.__version__, "prefix": sys.prefix}
            outputs = {
                c.OUTPUT_RESPONSE_TEXT: np.array([[json.dumps(facts).encode()]], dtype=np.object_),
                c.OUTPUT_RESPONSE_EMOTION: np.array([[c.RESPONSE_EMOTIONS[0].encode()]], dtype=np.object_),
                c.OUTPUT_USER_EMOTION: np.array([[c.USER_EMOTIONS[0].encode()]], dtype=np.object_),
                c.OUTPUT_EMOTION_VECTOR: np.arange(4, dtype=np.float32)[None],  # (1, 4)
                c.OUTPUT_RESPONSE_AUDIO: np.array([[data]], dtype=np.object_),
                c.OUTPUT_SPEECH_NOTE: np.array([[b""]], dtype=np.object_),
            }
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()]))
        return responses
"""

FAILING_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("weights are missing: fake-startup-failure")
"""

SLOW_MODEL = """
import time


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(120)
"""


def write_repository(root: Path, model_source: str) -> Path:
    """A model repository at `root` serving `model_source` as emotion_omni version 1; returns `root`."""
    version_dir = root / TRITON_MODEL_NAME / "1"
    version_dir.mkdir(parents=True)
    (root / TRITON_MODEL_NAME / "config.pbtxt").write_text((TEMPLATE_DIR / "config.pbtxt").read_text())
    (version_dir / "model.py").write_text(model_source)
    return root
