"""Shared fixtures: the template path, baked and trained projects, their environment, and an
MLflow server. The plain helpers they use live in the `helpers` package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.mlflow_server import mlflow_server
from helpers.project import (
    CACHE,
    GIT_IDENTITY,
    MODEL_VENV,
    QUIET_TOOLS,
    TEMPLATE,
    bake,
    run,
    setup_project,
)


@pytest.fixture(scope="session")
def template_dir() -> Path:
    return TEMPLATE


@pytest.fixture(scope="session")
def baked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default project for read-only checks; tests that change it must bake their own."""
    return bake(tmp_path_factory.mktemp("baked"))


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


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory, model_env: dict[str, str]) -> Path:
    """A default project after `make setup train`. Read-only: copy it to change it."""
    project = bake(tmp_path_factory.mktemp("trained"))
    setup_project(project, model_env)
    run(["make", "train"], project, model_env)
    return project


@pytest.fixture(scope="session")
def mlflow_server_uri(
    tmp_path_factory: pytest.TempPathFactory, trained_project: Path
) -> Iterator[str]:
    """One MLflow server for the session (trained_project guarantees the model venv exists)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri
