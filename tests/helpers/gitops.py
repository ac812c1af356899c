"""Helpers for test_gitops.py: run the baked project's deploy CLI and inspect a GitOps repo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT = "breast-cancer-classifier"
# Variables the CLI reads; scrubbed so the tests behave the same inside and outside CI.
SCRUBBED = (
    "CI",  # the template's own CI: the deploy tool refuses its embedded default there
    "CI_DEFAULT_BRANCH",
    "DEFAULT_BRANCH",
    "DEPLOY_BRANCH",
    "CI_COMMIT_REF_NAME",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_SHA",
    "GITHUB_SHA",
    "GITOPS_REPO",
    "GITOPS_TOKEN",
    "GITOPS_BRANCH",
    "MLFLOW_TRACKING_URI",
    "IMAGE_REPOSITORY",
    "PREVIEW_DOMAIN",
    "MLOPS_PROJECT",
    "GITOPS_TTL",
    "GITOPS_USER",
)
RETRIES = re.compile(r"committed and pushed \((\d+) retries\)")


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def image(n: int = 1) -> str:
    return f"127.0.0.1:5000/{PROJECT}:t{n}@{digest(n)}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return env | extra


def gitops(
    project: Path, *args: str, cwd: Path | None = None, python: str = sys.executable, **env: str
):
    """Run `python -m deploy.gitops ARGS` from the project (or from `cwd` with it on the path)."""
    extra = env if cwd is None else {**env, "PYTHONPATH": str(project)}
    return subprocess.run(
        [python, "-m", "deploy.gitops", *args],
        cwd=cwd or project,
        env=cli_env(**extra),
        capture_output=True,
        text=True,
        check=False,
    )


def start(project: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.gitops", *args],
        cwd=project,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def bare_repo(path: Path) -> Path:
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
    )
    return path


def files(repo: Path) -> set[str]:
    """Every file on the GitOps repo's main branch (empty before the first commit)."""
    if not git(repo, "branch", "--list", "main").strip():
        return set()
    return set(git(repo, "ls-tree", "-r", "--name-only", "main").split("\n")) - {""}


def commit_count(repo: Path) -> int:
    if not git(repo, "branch", "--list", "main").strip():
        return 0
    return int(git(repo, "rev-list", "--count", "main"))


def last_message(repo: Path) -> str:
    return git(repo, "log", "-1", "--format=%B", "main")


def read_values(repo: Path, env: str) -> dict:
    return yaml.safe_load(git(repo, "show", f"main:envs/{PROJECT}/{env}/values.yaml"))


def read_gate(repo: Path) -> dict:
    return json.loads(git(repo, "show", f"main:envs/{PROJECT}/production/gate.json"))


def values_path(env: str) -> str:
    return f"envs/{PROJECT}/{env}/values.yaml"


def env_name(project: Path, branch: str) -> str:
    result = gitops(project, "env-name", "--", branch)  # `--`: a branch may look like an option
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def write_lineage(project: Path, metrics: dict, **fields: str) -> None:
    """build/lineage.json as `make train` writes it (deploy/artifacts.py TrainRecord)."""
    build = project / "build"
    build.mkdir(exist_ok=True)
    lineage = {
        "model_name": PROJECT,
        "model_version": "3",
        "model_alias": "production",
        "mlflow_run_id": "0123456789abcdef0123456789abcdef",
        "git_commit": "3f2a1b4" + "0" * 33,
        "git_branch": "main",
        "data_md5": "0" * 32,
        "mlflow_tracking_uri": "sqlite:///mlflow.db",
        "experiment_id": "1",
        "run_url": "http://mlflow.example/#/experiments/1/runs/0123456789abcdef0123456789abcdef",
        "metrics": metrics,
        "identity": {},
    } | fields
    (build / "lineage.json").write_text(json.dumps(lineage), encoding="utf-8")


def write_image(project: Path, n: int = 1, **fields: str) -> None:
    """build/image.json as `make image` writes it (deploy/artifacts.py ImageRecord)."""
    build = project / "build"
    build.mkdir(exist_ok=True)
    record = {"repository": f"reg.example/{PROJECT}", "tag": f"t{n}", "digest": digest(n)} | fields
    (build / "image.json").write_text(json.dumps(record), encoding="utf-8")
