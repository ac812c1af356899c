"""The template's paths, baking projects, and running commands in them (shared by the fixtures)."""

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

TEMPLATE = Path(__file__).resolve().parents[2]
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


def require_mount_namespaces(what: str) -> None:
    """Root and mount namespaces, which running an image, a pod or a CI job here needs (in a
    container: a privileged one); skip without them, but fail under CI, naming what is missing."""
    unshare = require_tool("unshare")
    probe = subprocess.run(
        [unshare, "--mount", "true"], capture_output=True, text=True, check=False
    )
    if os.geteuid() == 0 and probe.returncode == 0:
        return
    why = probe.stderr.strip() or "not root"
    message = f"{what} needs root and mount namespaces (a privileged container): {why}"
    pytest.fail(message) if IN_CI else pytest.skip(message)


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


def copy_project(project: Path, destination: Path) -> Path:
    """A private copy of a project (git history, DVC cache and MLflow store included)."""
    target = destination / project.name
    shutil.copytree(project, target, symlinks=True)
    return target


def checkout_files(repo: Path) -> list[str]:
    """What a clone holds once the work in progress is committed: tracked and new, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name and (repo / name).exists()]
