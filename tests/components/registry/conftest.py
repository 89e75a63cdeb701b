"""The cluster's registry stack on loopback: a real PostgreSQL, and an `mlflow server` on it with S3 artifacts.

Session-scoped, so each server starts once: PostgreSQL in about a second, the MLflow server in 12-16 s on
two busy cores (its CLI and then its uvicorn worker each import MLflow). The S3 side is tests/conftest.py's
SeaweedFS `s3_server` (about a second).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

# Where the S3 server's bucket holds the MLflow server's artifacts (s3://models/mlartifacts/...).
SERVER_BUCKET, SERVER_PREFIX = "models", "mlartifacts"
# Seconds to wait for each server to come up: PostgreSQL takes about 1 s, the MLflow server up to 16 s on
# two loaded cores; this leaves room for a much slower machine without hiding a hung start.
_POSTGRES_START_TIMEOUT_S, _MLFLOW_START_TIMEOUT_S = 30, 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(message: str):
    # CI installs everything with `make setup`, so there a missing server is a broken setup, not a skip.
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL bin directory, else wherever initdb is on PATH (other distributions)."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log written)"


def _stop(process: subprocess.Popen, sig: int) -> None:
    """Signal the process group `process` leads (it started it with start_new_session), then wait."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL on 127.0.0.1 (password auth over TCP, as in a cluster).

    Yields an object with `url(database)` (a postgresql+psycopg2:// URI), `create_database(name)` and the
    `password` (which no error or display URI may show).
    """
    import psycopg2

    bin_dir = _postgres_bin()
    if bin_dir is None:
        _missing(
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/postgres) are not installed: run "
            "`make setup` (infra/setup.sh installs the postgresql package)"
        )
    # PostgreSQL refuses to run as root, which is what these tests run as in containers: run it as the
    # `postgres` system user the package creates, in a directory that user owns.
    run_as = {}
    root = Path(tempfile.mkdtemp(prefix="omni-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            _missing(
                "tests run as root, which PostgreSQL refuses, and there is no `postgres` user to run it as: "
                "run `make setup` (the postgresql package creates it) or run the tests as a normal user"
            )
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    password = "pg-" + os.urandom(8).hex()
    (root / "password").write_text(password + "\n")
    if run_as:
        os.chown(root / "password", run_as["user"], run_as["group"])
    log = root / "postgres.log"
    initdb = subprocess.run(
        [
            bin_dir / "initdb",
            "-D",
            root / "data",
            "-U",
            "mlflow",
            f"--pwfile={root / 'password'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ],
        capture_output=True,
        text=True,
        check=False,
        **run_as,
    )
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed ({initdb.returncode}): {initdb.stdout[-1500:]}{initdb.stderr[-1500:]}")
    port = free_port()
    # Durability off: the data is thrown away, so waiting for the disk on every commit buys nothing.
    with open(log, "w") as out:  # the server writes to its own copy of the descriptor
        process = subprocess.Popen(
            [
                bin_dir / "postgres",
                "-D",
                root / "data",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                root,
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **run_as,
        )

    def connect(database: str = "postgres"):
        return psycopg2.connect(
            host="127.0.0.1", port=port, user="mlflow", password=password, dbname=database, connect_timeout=5
        )

    deadline = time.monotonic() + _POSTGRES_START_TIMEOUT_S
    while True:
        try:
            connect().close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                _stop(process, signal.SIGKILL)
                pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{port}; log:\n{_log_tail(log)}")
            time.sleep(0.1)

    def create_database(name: str) -> str:
        connection = connect()
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return name

    yield types.SimpleNamespace(
        password=password,
        create_database=create_database,
        url=lambda database: f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{port}/{database}",
    )
    _stop(process, signal.SIGINT)  # SIGINT is PostgreSQL's "fast" shutdown: it ends open sessions
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres_server, s3_server, tmp_path_factory):
    """`mlflow server` (the venv's CLI) on PostgreSQL, proxying artifacts to s3://models/mlartifacts.

    Yields an object with `uri` (http://127.0.0.1:PORT) and `database_uri` (its PostgreSQL store, for
    clients that talk to the database directly).
    """
    import requests

    endpoint, key, secret = s3_server
    database_uri = postgres_server.url(postgres_server.create_database("mlflow"))
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": f"http://{endpoint}",
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        # The job runner (GenAI evaluation jobs) starts seven more processes that each import MLflow,
        # which doubles the start on two cores; the registry needs none of it.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    mlflow = Path(sys.executable).parent / "mlflow"  # beside the venv's python, not necessarily on PATH
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                mlflow,
                "server",
                "--backend-store-uri",
                database_uri,
                "--artifacts-destination",
                f"s3://{SERVER_BUCKET}/{SERVER_PREFIX}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    while True:
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                break
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            pass
        exit_code = process.poll()
        if time.monotonic() - started > _MLFLOW_START_TIMEOUT_S or exit_code is not None:
            _stop(process, signal.SIGKILL)
            state = "still running" if exit_code is None else f"exited with {exit_code}"
            pytest.fail(
                f"mlflow server did not answer {uri}/health within {_MLFLOW_START_TIMEOUT_S} s ({state}); "
                f"log:\n{_log_tail(log)}"
            )
        time.sleep(0.2)
    yield types.SimpleNamespace(uri=uri, database_uri=database_uri)
    # Killed, not stopped: its state is in PostgreSQL and S3, and a graceful stop waits ~4 s for idle
    # keep-alive connections of this process's MLflow clients.
    _stop(process, signal.SIGKILL)


@pytest.fixture()
def s3_client_env(s3_env, monkeypatch):
    """s3_env plus MLFLOW_S3_ENDPOINT_URL: what a pipeline step that writes s3:// artifacts itself has."""
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://{s3_env}")
    return s3_env
