"""Start and stop the tritonserver that ships inside the nvidia-pytriton wheel, with no Docker.

The wheel carries a real `tritonserver` binary, the python backend and one backend stub per Python
minor version. `TritonServer` puts them together the way pytriton itself does, serves a model
repository on 127.0.0.1 and waits until the models are ready:

    with TritonServer(TritonConfig(model_repository="build/model_repository")) as server:
        print(server.http_url)          # "127.0.0.1:<port>", what tritonclient.http takes

How the python-backend stub gets this environment's packages (numpy<2, torch, `components`): the stub
embeds libpython and, like `python3` itself, derives `sys.prefix` from the first `python3` on PATH. So
the server's PATH starts with this interpreter's bin directory (pytriton does the same), which makes
the stub's `sys.path` the venv's, editable installs included. The stub links `libpython3.X.so`, and
the system copy may be an older patch release than this interpreter's stdlib (Debian's 3.11.2 against
pyenv's 3.11.7 fails in `_ssl`), so this interpreter's own shared libpython is put first on
LD_LIBRARY_PATH as well.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from components.contracts import TRITON_ADMIN_HEADER, TRITON_MODEL_NAME
from components.errors import ConfigError, InputNotFoundError, OmniError

_PIP_HINT = "pip install nvidia-pytriton==0.7.0"
_LOG_TAIL_LINES = 25
_CPU_NOISE = "CudaDriverHelper has not been initialized"


@dataclass
class TritonConfig:
    """Everything `TritonServer` needs; the defaults serve emotion_omni on 127.0.0.1 with free ports."""

    # A local directory or s3://bucket/path; for MinIO/SeaweedFS s3://host:port/bucket/path (HTTPS), or
    # s3://http://host:port/bucket/path for a plain-HTTP endpoint. Credentials: AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION in the environment.
    model_repository: str
    host: str = "127.0.0.1"  # safe default; "0.0.0.0" only inside a container
    http_port: int = 0  # 0 = pick a free port at start()
    grpc_port: int = 0
    metrics_port: int = 0
    # "explicit": only `models` are loaded at startup (all of them when `models` is empty) and the
    # repository API can load/unload later. "none": every model in the repository is loaded at startup
    # and the set is fixed. Either way a model that fails to load makes start() fail.
    model_control_mode: str = "explicit"
    models: tuple[str, ...] = (TRITON_MODEL_NAME,)  # also the models start() waits to be ready
    # False (explicit mode only): start with no model loaded, for a first deploy that loads the version it verifies
    # through the repository API (serving/deploy_local.py); start() then waits for the server alone.
    load_models_at_start: bool = True
    startup_timeout_s: float = 120.0  # model loading (weights, torch import) is most of it
    stop_timeout_s: float = 30.0  # how long stop() lets in-flight requests finish before SIGKILL
    log_verbose: int = 0  # tritonserver --log-verbose level; 1 logs every request
    work_dir: str | None = None  # holds the prepared backend dir and the log; None = a fresh temp dir
    # whose backend copy stop() removes, keeping the log so it can still be read
    extra_args: tuple[str, ...] = ()  # passed to tritonserver verbatim, e.g. ("--allow-gpu-metrics=false",)
    # The repository API (load/unload: what `omni deploy` uses) answers only requests whose `admin_header` carries
    # this key; "" leaves it open to anyone who can reach the port. Triton takes the key on its command line only,
    # so it shows in the process table: acceptable on a single-user machine (the chart passes it from a Secret).
    admin_key: str = field(default="", repr=False)  # repr=False: a logged config never shows it
    admin_header: str = TRITON_ADMIN_HEADER

    def __post_init__(self) -> None:
        if self.model_control_mode not in ("explicit", "none"):
            raise ConfigError(
                f"model_control_mode={self.model_control_mode!r} is not supported; use 'explicit' or 'none'"
            )
        if not self.load_models_at_start and self.model_control_mode != "explicit":
            raise ConfigError("load_models_at_start=False needs model_control_mode='explicit' (mode 'none' loads all)")
        # Triton splits the flag's value at ',', ':' and '='; the key itself is never named in a message.
        if any(c in self.admin_key for c in ",:= \n") or any(c in self.admin_header for c in ",:= \n"):
            raise ConfigError("admin_key and admin_header must not contain ',', ':', '=' or whitespace; pick another")


class TritonStartupError(OmniError, RuntimeError):
    """tritonserver exited or did not become ready; the message carries the reason from its log."""


def _pytriton_root() -> Path:
    # find_spec locates the package without importing it (pytriton's import has side effects).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise InputNotFoundError(
            f"tritonserver not found: the nvidia-pytriton wheel is not installed; run `{_PIP_HINT}`"
        )
    return Path(spec.origin).parent


def find_tritonserver() -> Path:
    """Path of the tritonserver binary inside the installed nvidia-pytriton wheel."""
    binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        raise InputNotFoundError(f"tritonserver not found at {binary}; reinstall the wheel: `{_PIP_HINT}`")
    return binary


def _libs_dir() -> Path:
    # auditwheel puts the server's shared libraries next to the package (pytriton's get_libs_path).
    return _pytriton_root().parent / "nvidia_pytriton.libs"


def prepare_backend_dir(work_dir: Path) -> Path:
    """Build `<work_dir>/backends/python` = the wheel's python backend + the stub for this Python.

    The wheel keeps the stubs apart (one per Python minor version); tritonserver looks for
    `triton_python_backend_stub` next to libtriton_python.so, so the matching one is copied in.
    Returns the directory to pass as --backend-directory.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    root = _pytriton_root() / "tritonserver"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise InputNotFoundError(
            f"no python-backend stub for Python {version} in {stub.parent.parent}; "
            f"use a Python the wheel ships a stub for, or `{_PIP_HINT}`"
        )
    backends = work_dir / "backends"
    python_dir = backends / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for src in (root / "backends" / "python").iterdir():
        if src.is_file():
            shutil.copy2(src, python_dir / src.name)
    shutil.copy2(stub, python_dir / stub.name)
    return backends


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment under which the backend stub imports this interpreter's packages (see module doc)."""
    # No OMP_NUM_THREADS here: model.py sizes each instance's torch pool by the CPU quota split between the
    # model's instances (components.cpu.fit_torch_threads), and an OMP_NUM_THREADS would override that split
    # (measured: 2 instances x 2 threads on 2 cores served one-at-a-time at half the rate of 1 instance).
    env = dict(os.environ if base is None else base)
    lib_dirs = [str(_libs_dir())]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        lib_dirs.insert(0, sysconfig.get_config_var("LIBDIR"))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_dirs + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    return env


def free_ports(host: str, count: int) -> list[int]:
    # Sockets stay open until all are bound so the ports differ; another process could still take one
    # before tritonserver binds it, in which case start() fails with "address already in use" in the log.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _check_numpy() -> None:
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        raise TritonStartupError(
            f"numpy {numpy.__version__} is installed; Triton's python-backend stub silently "
            "returns empty outputs with numpy 2. Fix: pip install 'numpy<2'"
        )


class TritonServer:
    """A tritonserver subprocess serving `config.model_repository`; use as a context manager."""

    def __init__(self, config: TritonConfig):
        self.config = config
        self._process: subprocess.Popen | None = None
        self._ports: tuple[int, int, int] | None = None
        self._work_dir: Path | None = None

    # --- addresses ------------------------------------------------------------------------------
    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise RuntimeError("the server has not been started; call start() first")
        return self._ports[index]

    @property
    def http_url(self) -> str:
        """`host:port` of the HTTP/REST endpoint, the form tritonclient.http takes."""
        return f"{self._client_host}:{self._port(0)}"

    @property
    def grpc_url(self) -> str:
        """`host:port` of the gRPC endpoint, the form tritonclient.grpc takes."""
        return f"{self._client_host}:{self._port(1)}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus metrics endpoint."""
        return f"http://{self._client_host}:{self._port(2)}/metrics"

    @property
    def pid(self) -> int:
        """tritonserver's process id (its python-backend stubs are its children)."""
        if self._process is None:
            raise RuntimeError("the server has not been started; call start() first")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """The server's stdout+stderr, model.py prints included."""
        if self._work_dir is None:
            raise RuntimeError("the server has not been started; call start() first")
        return self._work_dir / "tritonserver.log"

    # --- lifecycle ------------------------------------------------------------------------------
    def _command(self, backend_dir: Path) -> list[str]:
        cfg = self.config
        repo = cfg.model_repository
        if "://" not in repo:
            repo = str(Path(repo).resolve())
        http, grpc, metrics = (self._port(i) for i in range(3))
        cmd = [
            str(find_tritonserver()),
            f"--model-repository={repo}",
            f"--backend-directory={backend_dir}",
            f"--http-address={cfg.host}",
            f"--http-port={http}",
            f"--grpc-address={cfg.host}",
            f"--grpc-port={grpc}",
            f"--metrics-address={cfg.host}",
            f"--metrics-port={metrics}",
            f"--model-control-mode={cfg.model_control_mode}",
            # Our configs are complete; auto-complete would start one extra stub per model at load.
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={int(cfg.stop_timeout_s)}",
            f"--log-verbose={cfg.log_verbose}",
            # Each python-backend instance gets a shared-memory region under this prefix in /dev/shm;
            # two servers with the same (default) prefix on one host clobber each other's regions.
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix()}",
        ]
        if cfg.model_control_mode == "explicit" and cfg.load_models_at_start:
            cmd += [f"--load-model={m}" for m in cfg.models] or ["--load-model=*"]
        # Both protocols, or the gRPC port would still load and unload for anyone. gRPC clients send the key under
        # "triton-grpc-protocol-<admin_header>" (Triton's prefix for restricted-protocol metadata).
        if cfg.admin_key:
            restricted = f"model-repository:{cfg.admin_header}={cfg.admin_key}"
            cmd += [f"--http-restricted-api={restricted}", f"--grpc-restricted-protocol={restricted}"]
        return cmd + list(cfg.extra_args)

    def _shm_prefix(self) -> str:
        return f"omni_{os.getpid()}_{self._port(0)}_"

    def start(self) -> TritonServer:
        """Start tritonserver and block until it and `config.models` are ready."""
        if self._process is not None:
            raise RuntimeError("the server is already running")
        cfg = self.config
        _check_numpy()
        if "://" not in cfg.model_repository and not Path(cfg.model_repository).is_dir():
            raise InputNotFoundError(
                f"model_repository={cfg.model_repository!r} is not a directory; "
                "build one with serving.repository.build_model_repository"
            )
        self._work_dir = Path(cfg.work_dir) if cfg.work_dir else Path(tempfile.mkdtemp(prefix="omni-triton-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = prepare_backend_dir(self._work_dir)
        requested = (cfg.http_port, cfg.grpc_port, cfg.metrics_port)
        free = iter(free_ports(cfg.host, requested.count(0)))
        self._ports = tuple(p or next(free) for p in requested)  # type: ignore[assignment]

        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self._command(backend_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(),
                cwd=self._work_dir,  # cwd: the stub has "" on sys.path
                start_new_session=True,  # its own process group, so stop() can also reap the stubs
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        models = self.config.models if self.config.load_models_at_start else ()
        pending = ["/v2/health/ready"] + [f"/v2/models/{m}/ready" for m in models]
        while pending:
            if self._process.poll() is not None:
                raise TritonStartupError(
                    f"tritonserver {self.exit_reason} before it was ready.\n" + self._log_excerpt()
                )
            if time.monotonic() > deadline:
                raise TritonStartupError(
                    f"tritonserver was not ready after {self.config.startup_timeout_s:.0f} s "
                    f"(still waiting on {pending[0]}); raise TritonConfig.startup_timeout_s "
                    "if loading is just slow.\n" + self._log_excerpt()
                )
            if self._get(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.1)

    def _log_excerpt(self) -> str:
        """The server log's error lines (the model's traceback is in them), else its last lines."""
        try:
            lines = [line.rstrip() for line in self.log_path.read_text(errors="replace").splitlines()]
        except OSError as err:
            return f"(could not read {self.log_path}: {err})"
        # glog error lines ("E1125 09:32:48...") minus one every CPU-only start prints.
        errors = [line for line in lines if line[:1] == "E" and line[1:2].isdigit() and _CPU_NOISE not in line]
        if errors:
            return f"Errors in {self.log_path}:\n" + "\n".join(errors)
        return f"Last lines of {self.log_path}:\n" + "\n".join(lines[-_LOG_TAIL_LINES:])

    def stop(self) -> None:
        """SIGTERM (tritonserver drains in-flight requests), then SIGKILL the group after stop_timeout_s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.config.stop_timeout_s + 5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the stubs, and the server if it ignored SIGTERM
        except ProcessLookupError:
            pass
        process.wait()
        # Killed stubs (and a server past its exit timeout) leave their regions behind in /dev/shm.
        for region in Path("/dev/shm").glob(f"{self._shm_prefix()}*"):
            region.unlink(missing_ok=True)
        if self.config.work_dir is None:
            shutil.rmtree(self._work_dir / "backends", ignore_errors=True)

    @property
    def running(self) -> bool:
        """True while the tritonserver process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def exit_reason(self) -> str:
        """How a started server ended, for messages: "exited with code 1", "was killed by SIGKILL", "is running"."""
        code = None if self._process is None else self._process.poll()
        if code is None:
            return "is running" if self._process is not None else "was not started"
        if code < 0:  # Popen's returncode for a signal: an OOM kill or a `kill -9` shows as SIGKILL
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
