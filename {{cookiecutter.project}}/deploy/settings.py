"""Project settings for the deploy tool: `[tool.mlops]` in pyproject.toml, overridden by env vars.

A teardown job may run without a checkout of the branch (even without pyproject.toml), so every
setting can also come from a flag or an environment variable.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Where CI systems put the branch name, in order of preference (GitHub sets GITHUB_HEAD_REF only
# for pull requests, where GITHUB_REF_NAME would be the merge ref).
BRANCH_ENV_VARS = ("DEPLOY_BRANCH", "CI_COMMIT_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_REF_NAME")


@dataclass(frozen=True)
class Settings:
    root: Path  # the model repo (where pyproject.toml, params.yaml and build/ live)
    project: str
    default_branch: str
    mlflow_tracking_uri: str
    image_repository: str
    gitops_repo: str
    preview_domain: str
    gitops_repo_is_default: bool  # only the embedded default may be created on first use


def find_root() -> Path:
    """The model repo: the working directory if it has a pyproject.toml, else the package's."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return Path.cwd()


def _read_pyproject(root: Path) -> tuple[str, dict]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return "", {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return data.get("project", {}).get("name", ""), data.get("tool", {}).get("mlops", {})


def _gitops_repo(flag: str | None, configured: str, root: Path) -> tuple[str, bool]:
    """The GitOps repo location. git runs in a temporary clone, so local paths are made
    absolute: relative to the working directory when given, to the model repo when configured."""
    given = flag or os.environ.get("GITOPS_REPO")
    if given:
        return (given if is_remote(given) else str(Path(given).resolve())), False
    if configured and not is_remote(configured):
        return str((root / configured).resolve()), True
    return configured, True


def is_remote(location: str) -> bool:
    """True for URLs and scp-like `host:path`; False for local paths."""
    if "://" in location:
        return not location.startswith("file://")
    head = location.split("/", 1)[0]
    return ":" in head and not Path(location).exists()


def load(
    project: str | None = None,
    default_branch: str | None = None,
    gitops_repo: str | None = None,
) -> Settings:
    root = find_root()
    name, mlops = _read_pyproject(root)
    repo, is_default = _gitops_repo(gitops_repo, mlops.get("gitops-repo", ""), root)
    env = os.environ
    return Settings(
        root=root,
        project=project or env.get("MLOPS_PROJECT") or name,
        default_branch=default_branch or mlops.get("default-branch") or "main",
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or mlops.get("mlflow-tracking-uri", ""),
        image_repository=env.get("IMAGE_REPOSITORY") or mlops.get("image-repository", ""),
        gitops_repo=repo,
        preview_domain=env.get("PREVIEW_DOMAIN")
        or mlops.get("preview-domain", "preview.localhost"),
        gitops_repo_is_default=is_default,
    )


def current_branch(root: Path) -> str | None:
    """The branch being deployed: CI variables first, then the checkout's HEAD."""
    for var in BRANCH_ENV_VARS:
        if os.environ.get(var):
            return os.environ[var]
    result = subprocess.run(
        ["git", "symbolic-ref", "--quiet", "--short", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


def git_commit(root: Path) -> str | None:
    """The checked-out commit, if the model repo is a git checkout."""
    for var in ("CI_COMMIT_SHA", "GITHUB_SHA"):
        if os.environ.get(var):
            return os.environ[var]
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None
