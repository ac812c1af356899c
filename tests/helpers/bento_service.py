"""The real Bento of a trained project, served: its fixtures (module-scoped: each test module gets
its own copy, store and server) and the HTTP calls the tests make to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.project import copy_project, run
from helpers.servers import free_port

HELPERS = Path(__file__).resolve().parent
STARTUP_SECONDS = 180


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    """POST raw bytes; returns the status and the decoded JSON answer (or its text)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def post_json(url: str, payload: Any) -> tuple[int, Any]:
    return post(url, json.dumps(payload).encode())


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def bento_project(
    trained_project: Path, model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A copy of the trained project after `make bento`, with its own BentoML store."""
    project = copy_project(trained_project, tmp_path_factory.mktemp("bento"))
    env = {**model_env, "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml-home"))}
    run(["make", "bento"], project, env)
    return project, env


@pytest.fixture(scope="module")
def reference(bento_project: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    """In-process predictions of the registered model, and its MLflow lineage."""
    project, env = bento_project
    python = Path(env["UV_PROJECT_ENVIRONMENT"]) / "bin" / "python"
    env = {**env, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"}
    result = run([str(python), str(HELPERS / "service_inprocess.py")], project, env)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(bento_project: tuple[Path, dict[str, str]]) -> Iterator[str]:
    """`make serve` on a free port; yields the base URL once /readyz answers."""
    project, env = bento_project
    env = {**env, "SERVICE_PREDICTION_LOG": str(project / "build" / "predictions.jsonl")}
    port = free_port()
    log = (project / "build" / "serve.log").open("wb")
    process = subprocess.Popen(
        ["make", "serve", f"PORT={port}"],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops the workers too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if get(f"{url}/readyz") == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            log.flush()
            tail = (project / "build" / "serve.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"make serve did not become ready (exit {process.poll()}):\n{tail}")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
