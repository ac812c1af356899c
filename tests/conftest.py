"""Shared fixtures: the template path, baked and trained projects, their environment, an MLflow
server, and the real image of a trained project. The plain helpers they use live in the
`helpers` package."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bento_service import bento_project, reference, server  # noqa: F401 - fixtures
from helpers.images import base_image_env, builder_workspace, local_registry, mounted_rootfs
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
    # What the template's own CI sets for the template repo must not reach the generated ones.
    leaked = ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "GITOPS_REPO", "CI_COMMIT_REF_NAME")
    forge = ("CI_DEFAULT_BRANCH", "DEFAULT_BRANCH", "CI_COMMIT_SHA", "GITHUB_SHA")
    branches = ("GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_BASE_REF")
    # Under `make test`, a project's make would count as a sub-make and print its directory.
    make = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    for name in (*leaked, *forge, *branches, *make):
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
    """The model env plus a local registry and the base image pushed there."""
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry, {**model_env, **base_image_env(registry)}


@pytest.fixture(scope="session")
def built_image(trained_project, image_env):
    """A trained project's image, built by `make setup image` as an unprivileged user with every
    process traced: (project, builder, build/image.json + reference, trace)."""
    registry, env = image_env
    with builder_workspace(trained_project, env) as builder:
        repository = f"{registry}/{builder.project.name}"
        builder.make("setup")
        trace = builder.workspace / "strace.log"
        builder.make("image", trace=trace, IMAGE_REPOSITORY=repository)
        record = json.loads((builder.project / "build" / "image.json").read_text())
        record["reference"] = f"{record['repository']}@{record['digest']}"
        yield builder.project, builder, record, trace


@pytest.fixture(scope="session")
def image_rootfs(built_image, image_env):
    _, _, record, _ = built_image
    with mounted_rootfs(record["reference"], image_env[1]) as rootfs:
        yield rootfs
