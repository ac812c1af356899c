"""Shared fixtures: the template path, baking projects, and tools that must exist under CI."""

from __future__ import annotations

import os
import shutil
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
