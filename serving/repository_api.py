"""Triton's model-repository API (explicit model-control mode): what is loaded, load, unload.

    api = RepositoryAPI("127.0.0.1:8000", os.environ["TRITON_ADMIN_KEY"])
    api.load("emotion_omni")            # re-reads emotion_omni/config.pbtxt; the old version serves until it is done
    api.ready_versions("emotion_omni")  # [2]

`omni serve` restricts this API to requests carrying the admin header (TritonConfig.admin_key). Measured on
Triton 2.51: a request without the header, or with a wrong key, gets HTTP 403 {"error": "This API is restricted,
expecting header '<header>'"}; a load that fails gets 400 with the model's own reason (its traceback); a model
that is not in the repository gets 500 "failed to poll from model repository".
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from components.contracts import TRITON_ADMIN_HEADER, TRITON_ADMIN_KEY_ENV, TRITON_HTTP_PORT
from components.deploy.errors import DeployError

READY = "READY"  # Triton's state of a version that answers requests


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
        self.url = url  # host:port (TritonServer.http_url), or http://host:port
        self.base = url.rstrip("/") if "://" in url else f"http://{url.rstrip('/')}"
        self.timeout_s = timeout_s
        self.key_env = key_env
        self._headers = {header: admin_key, "Content-Type": "application/json"}

    def index(self) -> list[dict]:
        """Every model version Triton knows in the repository: {"name", "version", "state", "reason"?}."""
        return json.loads(self._post("/v2/repository/index", "read the repository index") or "[]")

    def load(self, model: str) -> None:
        """Load `model` from its config.pbtxt on disk; returns when the versions it names are ready."""
        self._post(f"/v2/repository/models/{model}/load", f"load {model}")

    def unload(self, model: str) -> None:
        """Unload every version of `model` (in-flight requests finish first)."""
        self._post(f"/v2/repository/models/{model}/unload", f"unload {model}")

    def ready_versions(self, model: str) -> list[int]:
        """The versions of `model` that answer requests now, ascending."""
        return sorted(int(m["version"]) for m in self.index() if m.get("name") == model and m.get("state") == READY)

    def _post(self, path: str, action: str) -> str:
        request = urllib.request.Request(self.base + path, data=b"{}", headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read().decode()
        except urllib.error.HTTPError as err:
            message = _triton_message(err)
            if err.code == 403:
                raise DeployError(
                    f"the server at {self.url} refused the restricted-API key in ${self.key_env} (Triton: {message}): "
                    "set it to the key omni serve was started with"
                ) from None
            raise DeployError(f"could not {action} on {self.url}: {message}") from None
        except (urllib.error.URLError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise DeployError(
                f"cannot reach Triton at {self.url} ({reason}) to {action}; start it with `omni serve` "
                f"(HTTP port {TRITON_HTTP_PORT} by default) or pass its url"
            ) from None
        except TimeoutError:
            raise DeployError(
                f"Triton at {self.url} did not answer '{action}' within {self.timeout_s:.0f} s; "
                "its log says why, or raise the timeout if loading is just slow"
            ) from None


def _triton_message(err: urllib.error.HTTPError) -> str:
    """The "error" text of Triton's JSON error body, else the body, else the HTTP status."""
    body = err.read().decode(errors="replace")
    try:
        return str(json.loads(body)["error"]).rstrip().rstrip(";").rstrip()  # a load error ends in ";\n"
    except (ValueError, KeyError, TypeError):
        return body.strip() or f"HTTP {err.code} {err.reason}"
