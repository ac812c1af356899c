"""`make image`: the generated project's image build (deploy/image.py + Containerfile).

The fast test drives deploy/image.py against a fake `buildah` (what it runs, what it writes, that
credentials never reach argv or output). The slow tests build the real image of a trained
project with buildah on the debootstrap base image, push it to a local registry, and check it
from the outside (skopeo), the inside (its root filesystem) and by running it read-only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.images import (
    base_image_env,
    local_registry,
    mounted_rootfs,
    serve_read_only,
    skopeo_inspect,
    wait_ready,
)
from helpers.project import copy_project, run
from helpers.servers import free_port

SERVICE_UID = 1034
# Tools a runtime image must not carry: compilers, build tools, git, and uv (build-only here).
FORBIDDEN = ("gcc", "cc", "c++", "g++", "clang", "make", "git", "uv")
BIN_DIRS = ("usr/bin", "usr/local/bin", "bin", "usr/sbin", "opt/venv/bin")
# Sticky world-writable directories are fine: on a read-only root they are read-only too.
STICKY_OK = ("tmp", "var/tmp", "run/lock", "dev/shm")

FAKE_BUILDAH = r"""#!/usr/bin/env bash
# Records each call; `login` records its stdin; `bud` lists its context; `push` writes a digest.
printf '%s\n' "$*" >>"$FAKE_LOG"
case $1 in
  login) cat >"$FAKE_LOG.stdin" ;;
  bud) context=${!#}; (cd "$context" && find . -printf '%m %p\n' | sort) >"$FAKE_LOG.context" ;;
  push) while (($#)); do [[ $1 == --digestfile ]] && echo sha256:0123abcd >"$2"; shift; done ;;
esac
"""
# Answers `inspect` with $FAKE_SKOPEO_ANSWER when that file exists (the registry holds the tag).
FAKE_SKOPEO = r"""#!/usr/bin/env bash
printf 'skopeo %s\n' "$*" >>"$FAKE_LOG"
[[ -f $FAKE_SKOPEO_ANSWER ]] && exec cat "$FAKE_SKOPEO_ANSWER"
echo "manifest unknown" >&2
exit 1
"""


# ------------------------------------------------------------------------------- fast test
def fake_bento(home: Path) -> Path:
    """A Bento in a BentoML store layout, with one model kept beside it (as `bentoml build` does)."""
    bento = home / "bentos" / "demo" / "v1"
    (bento / "env" / "python").mkdir(parents=True)
    (bento / "env" / "python" / "requirements.txt").write_text("bentoml==1.4.39\n")
    (bento / "bento.yaml").write_text("services:\n- models:\n  - tag: demo:m1\n")
    model = home / "models" / "demo" / "m1"
    model.mkdir(parents=True)
    (model / "model.yaml").write_text("name: demo\n")
    model.chmod(0o700)  # like the store: the build must still make it readable
    return bento


def image_script(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.image"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_image_script_builds_pushes_and_records_without_leaking_credentials(
    baked_project, model_env, tmp_path
):
    project = copy_project(baked_project, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, script in (("buildah", FAKE_BUILDAH), ("skopeo", FAKE_SKOPEO)):
        (bin_dir / tool).write_text(script)
        (bin_dir / tool).chmod(0o755)
    bento = fake_bento(tmp_path / "bentoml")
    (project / "build").mkdir()
    (project / "build" / "bento.json").write_text(
        json.dumps(
            {
                "tag": "demo:v1",
                "path": str(bento),
                "bento_model": "demo:m1",
                "model_name": "demo",
                "model_version": "7",
                "model_alias": "production",
                "mlflow_run_id": "run123",
                "mlflow_tracking_uri": "sqlite:///mlflow.db",
                "git_commit": "f" * 40,
                "git_branch": "main",
                "data_md5": "0" * 32,
            }
        )
    )
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    log = tmp_path / "buildah.log"
    env = {
        key: value
        for key, value in model_env.items()
        if not key.startswith(("CI_", "GITHUB_", "REGISTRY_", "BASE_IMAGE", "EXTRA_CA"))
    }
    env.update(
        {
            "PATH": f"{bin_dir}:{env['PATH']}",
            "PYTHONPATH": f"{project / 'src'}:{project}",
            "FAKE_LOG": str(log),
            "FAKE_SKOPEO_ANSWER": str(tmp_path / "skopeo.json"),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "IMAGE_REPOSITORY": "registry.example.com/team/demo",
            "REGISTRY_USER": "robot",
            "REGISTRY_PASSWORD": "s3cret-Value",
            "EXTRA_CA_CERTS": str(tmp_path / "ca.pem"),
            "BASE_IMAGE": "localhost/debian-python:3.11",
        }
    )

    # A clone URL with a token in it must not end up in the source label.
    run(
        ["git", "remote", "add", "origin", "https://ci:t0ken@git.example.com/g/r.git"], project, env
    )

    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    commit = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    calls = log.read_text()
    assert "s3cret-Value" not in calls + result.stdout + result.stderr
    assert (tmp_path / "buildah.log.stdin").read_text() == "s3cret-Value"
    (login,) = (line for line in calls.splitlines() if line.startswith("login "))
    assert "--tls-verify=true" in login and login.endswith("registry.example.com")
    (bud,) = (line for line in calls.splitlines() if line.startswith("bud "))
    assert "--build-arg BASE_IMAGE=localhost/debian-python:3.11" in bud
    assert f"--volume {tmp_path / 'ca.pem'}:/mnt/build/ca.pem:ro" in bud
    assert f"--label org.opencontainers.image.revision={commit}" in bud
    assert "--label mlflow.run-id=run123" in bud and "--label mlflow.model-version=7" in bud
    assert "--label org.opencontainers.image.source=https://git.example.com/g/r.git" in bud
    assert "t0ken" not in calls
    (push,) = (line for line in calls.splitlines() if line.startswith("push "))
    image = f"registry.example.com/team/demo:{commit[:8]}"
    assert "--tls-verify=true" in push and push.endswith(f"{image} docker://{image}")
    assert "--authfile" in push
    assert f"rmi {image}" in calls  # the registry keeps it; local vfs copies are expensive
    # The context: the Containerfile, the Bento, its model (readable by the service user).
    context = dict(
        reversed(line.split(" ", 1))
        for line in (tmp_path / "buildah.log.context").read_text().splitlines()
    )
    assert context["./bento/models/demo/m1/model.yaml"] == "644"
    assert context["./bento/models/demo/m1"] == "755"
    assert {"./Containerfile", "./pyproject.toml", "./uv.lock"} <= context.keys()
    assert "./bento/env/python/requirements.txt" in context
    assert json.loads((project / "build" / "image.json").read_text()) == {
        "repository": "registry.example.com/team/demo",
        "tag": commit[:8],
        "digest": "sha256:0123abcd",
        "mlflow_run_id": "run123",
        "model_version": "7",
    }

    # A registry on this machine: plain HTTP, no CA mount, and no login: GitLab's job token is
    # for GitLab's registry only, never offered to the registry IMAGE_REPOSITORY names.
    log.unlink()
    for key in ("REGISTRY_USER", "REGISTRY_PASSWORD", "EXTRA_CA_CERTS"):
        del env[key]
    job_token = {"CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "job-Token-1"}
    env.update(job_token, CI_REGISTRY="registry.gitlab.example")
    env["IMAGE_REPOSITORY"] = "127.0.0.1:5000/demo"
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert "login " not in calls and "ca.pem" not in calls
    assert "job-Token-1" not in calls + result.stdout + result.stderr
    assert "push --tls-verify=false" in calls
    assert "skopeo inspect --tls-verify=false docker://127.0.0.1:5000/demo:" in calls

    # Pushing to GitLab's own registry logs in with the job token, on stdin.
    log.unlink()
    env["CI_REGISTRY"] = "127.0.0.1:5000"
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert "login --tls-verify=false --authfile" in log.read_text()
    assert "--username gitlab-ci-token --password-stdin 127.0.0.1:5000" in log.read_text()
    assert (tmp_path / "buildah.log.stdin").read_text() == "job-Token-1"
    for key in ("CI_REGISTRY", *job_token):
        del env[key]
    calls = log.read_text()

    # Run again with the registry holding this build: nothing is built or pushed.
    log.unlink()
    (bud,) = (line for line in calls.splitlines() if line.startswith("bud "))
    built_labels = dict(item.split("=", 1) for item in bud.split(" --label ")[1:] if "=" in item)
    answer = {"Digest": "sha256:feed", "Labels": built_labels}
    (tmp_path / "skopeo.json").write_text(json.dumps(answer))
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert "not rebuilt" in result.stdout
    assert not [line for line in log.read_text().splitlines() if not line.startswith("skopeo ")]
    assert json.loads((project / "build" / "image.json").read_text())["digest"] == "sha256:feed"

    # Another model on the same commit is another build.
    answer["Labels"] = {**built_labels, "mlflow.model-version": "6"}
    (tmp_path / "skopeo.json").write_text(json.dumps(answer))
    result = image_script(project, env)
    assert result.returncode == 0, result.stderr
    assert "bud " in log.read_text()


def test_image_script_explains_a_missing_bento(baked_project, model_env, tmp_path):
    project = copy_project(baked_project, tmp_path)
    env = {**model_env, "PYTHONPATH": f"{project / 'src'}:{project}"}
    result = image_script(project, env)
    assert result.returncode != 0
    assert "run `make bento` first" in result.stderr


# ------------------------------------------------------------------------------- slow tests
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


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_pushed_image_is_the_recorded_digest(built_image):
    project, env, record = built_image
    commit = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    assert record["tag"] == commit[:8]
    assert record["digest"].startswith("sha256:")
    assert skopeo_inspect(f"{record['repository']}:{record['tag']}")["Digest"] == record["digest"]
    assert skopeo_inspect(record["reference"])["Digest"] == record["digest"]


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_labels_trace_back_to_commit_and_mlflow_run(built_image):
    project, env, record = built_image
    labels = skopeo_inspect(record["reference"])["Labels"]
    lineage = json.loads((project / "build" / "lineage.json").read_text())
    bento = json.loads((project / "build" / "bento.json").read_text())
    commit = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels["org.opencontainers.image.title"] == project.name
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.base.name"] == env["BASE_IMAGE"]
    created = datetime.fromisoformat(labels["org.opencontainers.image.created"])
    assert datetime.now(UTC) - created < timedelta(hours=2)
    assert labels["mlflow.run-id"] == lineage["mlflow_run_id"]
    assert labels["mlflow.model-version"] == lineage["model_version"]
    assert labels["bentoml.tag"] == bento["tag"]


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_runs_as_fixed_non_root_user_that_can_write_only_tmp(built_image, image_rootfs):
    _, _, record = built_image
    config = skopeo_inspect(record["reference"], "--config")["config"]
    assert config["User"] == f"{SERVICE_UID}:{SERVICE_UID}"
    writable = []
    for directory, dirs, files in os.walk(image_rootfs):
        relative = os.path.relpath(directory, image_rootfs)
        if relative.startswith(("proc", "sys", "dev")):
            dirs.clear()
            continue
        for name in [*dirs, *files]:
            info = os.lstat(os.path.join(directory, name))
            path = os.path.normpath(os.path.join(relative, name))
            if stat.S_ISLNK(info.st_mode) or path in STICKY_OK:
                continue
            if (
                info.st_uid == SERVICE_UID
                or info.st_mode & stat.S_IWOTH
                or (info.st_gid == SERVICE_UID and info.st_mode & stat.S_IWGRP)
            ):
                writable.append(path)
    assert writable == []


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_has_no_compilers_git_or_build_leftovers(image_rootfs):
    found = [
        f"{directory}/{tool}"
        for directory in BIN_DIRS
        for tool in FORBIDDEN
        if os.path.lexists(image_rootfs / directory / tool)
    ]
    assert found == []
    assert not (image_rootfs / "mnt" / "build").exists()
    assert (image_rootfs / "opt" / "venv" / "bin" / "bentoml").is_file()
    assert list((image_rootfs / "home/bentoml/bento/models").glob("*/*/model.yaml"))


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_image_serves_on_a_read_only_root(built_image, image_rootfs, tmp_path):
    project, _, record = built_image
    config = skopeo_inspect(record["reference"], "--config")["config"]
    port = free_port()
    log = tmp_path / "serve.log"
    # As the chart runs it: the image's entrypoint and env, BENTOML_PORT set, only /tmp writable.
    env = {"BENTOML_HOST": "127.0.0.1", "BENTOML_PORT": str(port)}
    with serve_read_only(image_rootfs, config, env, log) as process:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=180, log=log, process=process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metadata",
            data=b"{}",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.load(response)
    lineage = json.loads((project / "build" / "lineage.json").read_text())
    assert served["model_version"] == lineage["model_version"]
    assert served["mlflow_run_id"] == lineage["mlflow_run_id"]
