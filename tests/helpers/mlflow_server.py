"""A real `mlflow server` for tests: sqlite backend and artifact root in a temporary directory.

Tests take the session's server as the `mlflow_server_uri` fixture (conftest.py):

    def test_x(mlflow_server_uri): ...           # http://127.0.0.1:<port>

or, for a private server, `with mlflow_server(workdir) as uri: ...`. It runs the model venv's
MLflow (the one generated projects use), so the fixture depends on `trained_project`, which
builds that venv. Starting takes ~12 s and ~560 MB, hence one server per session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.project import MODEL_VENV, QUIET_TOOLS

START_TIMEOUT = 120  # seconds; ~12 s on an idle machine, far more under a parallel test run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_healthy(uri: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            state = f"exited {process.returncode}" if process.poll() is not None else "timed out"
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"mlflow server {state} before answering {uri}/health:\n{tail}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its workers (its own process group), forcefully if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def mlflow_server(workdir: Path, mlflow: Path = MODEL_VENV / "bin" / "mlflow") -> Iterator[str]:
    """Run `mlflow server` on a free local port; yields its URI and always stops it."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    env = {**os.environ, **QUIET_TOOLS, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        str(mlflow),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--workers", "1",
    ]  # fmt: skip
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(uri, process, log)
        yield uri
    finally:
        stop(process)
