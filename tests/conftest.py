"""Shared fixtures: the template path, baked and trained projects, their environment, an MLflow
server, and the real image of a trained project. The plain helpers they use live in the
`helpers` package."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.images import base_image_env, local_registry, mounted_rootfs
from helpers.mlflow_server import mlflow_server
from helpers.project import (
    CACHE,
    GIT_IDENTITY,
    MODEL_VENV,
    QUIET_TOOLS,
    TEMPLATE,
    bake,
    copy_project,
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
    # What the template's own CI sets for the template repo must not reach the generated ones.
    leaked = ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "GITOPS_REPO", "CI_COMMIT_REF_NAME")
    forge = ("CI_DEFAULT_BRANCH", "DEFAULT_BRANCH", "CI_COMMIT_SHA", "GITHUB_SHA")
    branches = ("GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_BASE_REF")
    for name in (*leaked, *forge, *branches):
        env.pop(name, None)
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


# The real image (tests/test_image.py, tests/test_kserve_probes.py): built once per session.
@pytest.fixture(scope="session")
def image_env(model_env, tmp_path_factory):
    """The model env plus the base image, the shared containers storage and a local registry."""
    base = base_image_env()
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        env = {**model_env, **base, "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml"))}
        # `make setup` warmed the uv cache with every wheel of the lock: the build needs no index.
        env["UV_OFFLINE"] = "1"
        yield registry, env


@pytest.fixture(scope="session")
def built_image(trained_project, image_env, tmp_path_factory):
    """A trained project after `make bento image`: (project, env, build/image.json)."""
    registry, env = image_env
    project = copy_project(trained_project, tmp_path_factory.mktemp("image"))
    env = {**env, "IMAGE_REPOSITORY": f"{registry}/{project.name}"}
    run(["make", "bento"], project, env)
    run(["make", "image"], project, env, timeout=1800)
    record = json.loads((project / "build" / "image.json").read_text())
    return project, env, {**record, "reference": f"{record['repository']}@{record['digest']}"}


@pytest.fixture(scope="session")
def image_rootfs(built_image):
    _, env, record = built_image
    with mounted_rootfs(record["reference"], env) as rootfs:
        yield rootfs
