"""Project settings: `[tool.mlops]` in pyproject.toml, overridden by environment variables.

A teardown job may run without a checkout of the branch (even without pyproject.toml), so every
setting can also come from a flag or an environment variable.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .urls import is_remote


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
    """The model repo: the working directory if it has a pyproject.toml, else the toolkit's."""
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


def load_settings(
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
        # In CI the forge's own setting, so that its pipeline rules and the deploy tool agree
        # (GitHub has no such variable: the workflows set DEFAULT_BRANCH from the repository).
        default_branch=default_branch
        or env.get("CI_DEFAULT_BRANCH")
        or env.get("DEFAULT_BRANCH")
        or mlops.get("default-branch")
        or "main",
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or mlops.get("mlflow-tracking-uri", ""),
        image_repository=env.get("IMAGE_REPOSITORY") or mlops.get("image-repository", ""),
        gitops_repo=repo,
        preview_domain=env.get("PREVIEW_DOMAIN")
        or mlops.get("preview-domain", "preview.localhost"),
        gitops_repo_is_default=is_default,
    )
