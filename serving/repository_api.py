"""Triton's model-repository API (explicit model-control mode): what is loaded, load, unload; over gRPC.

    api = RepositoryAPI("127.0.0.1:8001", os.environ["TRITON_ADMIN_KEY"])   # the server's gRPC host:port
    api.load("emotion_omni")            # re-reads emotion_omni/config.pbtxt; the old version serves until it is done
    api.ready_versions("emotion_omni")  # [2]

Why gRPC: measured on Triton 2.51 (`omni bench rollout`, demo model, 2 cores), a load sent over HTTP stalled HTTP
inference for the whole load (p95 5.3 s during a deploy against 0.34 s before, requests waiting up to 4.3 s to
start); the same deploy with its loads sent over gRPC kept inference at p95 0.93 s (max wait 0.1 s). Callers use
HTTP, so the control traffic stays off their port.

`omni serve` restricts this API to requests carrying the admin header (TritonConfig.admin_key). On the gRPC port
Triton expects it as metadata named "triton-grpc-protocol-<header>"; a request without it, or with a wrong key, is
refused with "This API is restricted, expecting header '...'"; a load that fails carries the model's own reason (its
traceback); a model that is not in the repository fails with "failed to poll from model repository".
"""

from __future__ import annotations

from components.contracts import TRITON_ADMIN_HEADER, TRITON_ADMIN_KEY_ENV, TRITON_GRPC_PORT
from components.deploy.errors import DeployError

READY = "READY"  # Triton's state of a version that answers requests
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"  # how Triton's gRPC port names a restricted-API header


class RepositoryAPI:
    """Client of one server's repository API; every failure is a DeployError carrying Triton's own message."""

    def __init__(
        self,
        url: str,
        admin_key: str,
        header: str = TRITON_ADMIN_HEADER,
        timeout_s: float = 600.0,  # a load blocks until the model is ready: weights and torch import
        *,
        key_env: str = TRITON_ADMIN_KEY_ENV,  # where the key came from, for the message when it is refused
    ):
        self.url = url  # the gRPC host:port (TritonServer.grpc_url)
        self.timeout_s = timeout_s
        self.key_env = key_env
        self._headers = {GRPC_HEADER_PREFIX + header: admin_key}

    def index(self) -> list[dict]:
        """Every model version Triton knows in the repository: {"name", "version", "state", "reason"?}."""
        reply = self._call("read the repository index", "get_model_repository_index", as_json=True)
        return reply.get("models", [])

    def load(self, model: str) -> None:
        """Load `model` from its config.pbtxt on disk; returns when the versions it names are ready."""
        self._call(f"load {model}", "load_model", model, client_timeout=self.timeout_s)

    def unload(self, model: str) -> None:
        """Unload every version of `model` (in-flight requests finish first)."""
        self._call(f"unload {model}", "unload_model", model, client_timeout=self.timeout_s)

    def ready_versions(self, model: str) -> list[int]:
        """The versions of `model` that answer requests now, ascending."""
        return sorted(int(m["version"]) for m in self.index() if m.get("name") == model and m.get("state") == READY)

    def _call(self, action: str, method: str, *args, **kwargs):
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            with grpcclient.InferenceServerClient(self.url) as client:
                return getattr(client, method)(*args, headers=self._headers, **kwargs)
        except InferenceServerException as err:
            message = (err.message() or str(err)).rstrip().rstrip(";").rstrip()  # a load error ends in ";\n"
            status = str(err.status() or "")
            if "is restricted" in message:
                raise DeployError(
                    f"the server at {self.url} refused the restricted-API key in ${self.key_env} (Triton: {message}): "
                    "set it to the key omni serve was started with"
                ) from None
            if "UNAVAILABLE" in status:
                raise DeployError(
                    f"cannot reach Triton's gRPC port at {self.url} ({message}) to {action}; start it with "
                    f"`omni serve` (gRPC port {TRITON_GRPC_PORT} by default) or pass its grpc_url"
                ) from None
            if "DEADLINE_EXCEEDED" in status:
                raise DeployError(
                    f"Triton at {self.url} did not finish '{action}' within {self.timeout_s:.0f} s; its log says why, "
                    "or raise the timeout if loading is just slow"
                ) from None
            raise DeployError(f"could not {action} on {self.url}: {message}") from None
