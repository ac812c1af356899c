"""Shared fixtures: the template path, baking projects, and tools that must exist under CI."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
CACHE = TEMPLATE / ".cache"
IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str) -> str:
    """Path of a command-line tool; skip without it, but fail under CI where it must exist."""
    path = shutil.which(name) or shutil.which(name, path=str(CACHE / "node" / "bin"))
    if path:
        return path
    message = f"{name} is not installed (run `make tools`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def bake(output_dir: Path, **context: str) -> Path:
    """Generate a project from the template with the given options; returns its directory."""
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=context,
            output_dir=str(output_dir),
        )
    )


@pytest.fixture(scope="session")
def template_dir() -> Path:
    return TEMPLATE


@pytest.fixture(scope="session")
def baked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default project for read-only checks; tests that change it must bake their own."""
    return bake(tmp_path_factory.mktemp("baked"))


# Every generated project in a session shares one venv (the project code itself is not installed:
# it runs from each checkout) and the template's uv cache.
MODEL_VENV = CACHE / "model-venv"
QUIET_TOOLS = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """A lock shared by pytest-xdist workers, for work on the shared venv and caches."""
    CACHE.mkdir(exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def model_env() -> dict[str, str]:
    """Environment for commands run inside generated projects."""
    env = {
        **os.environ,
        **QUIET_TOOLS,
        **GIT_IDENTITY,
        "UV_PROJECT_ENVIRONMENT": str(MODEL_VENV),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv")),
    }
    for leaked in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "GITOPS_REPO", "CI_COMMIT_REF_NAME"):
        env.pop(leaked, None)
    return env


def run(
    command: Sequence[str], cwd: Path, env: dict[str, str], check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected exit code, fail with the tail of its output."""
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        pytest.fail(f"{' '.join(command)} exited {result.returncode} in {cwd}:\n{output}")
    return result


def setup_project(project: Path, env: dict[str, str]) -> None:
    """`make setup` with the shared venv (serialised: workers would race on the first install)."""
    with exclusive("model-venv"):
        run(["make", "setup"], project, env)


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory, model_env: dict[str, str]) -> Path:
    """A default project after `make setup train`. Read-only: copy it to change it."""
    project = bake(tmp_path_factory.mktemp("trained"))
    setup_project(project, model_env)
    run(["make", "train"], project, model_env)
    return project


def copy_project(project: Path, destination: Path) -> Path:
    """A private copy of a project (git history, DVC cache and MLflow store included)."""
    target = destination / project.name
    shutil.copytree(project, target, symlinks=True)
    return target
