"""What deploy, teardown and gc share: the environment of a branch, its directory in the GitOps
repo, and the checks on the settings they run with."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

from ..commands import current_branch
from ..naming import validate_project_name
from ..settings import Settings, load_settings
from .repo import Outcome, ensure_local_repo
from .values import load_values


def checked_settings(project: str | None, default_branch: str | None, repo: str | None) -> Settings:
    settings = load_settings(project, default_branch, repo)
    problem = validate_project_name(settings.project) if settings.project else "no project name"
    if problem:
        raise ProjectError(f"{problem} (set --project, MLOPS_PROJECT or [project] name)")
    return settings


def gitops_repo(settings: Settings) -> str:
    """The GitOps repo to write; the embedded default is created on first use, but never in CI,
    where it would be a throwaway directory on the runner that no Argo CD ever reads."""
    if not settings.gitops_repo:
        raise ProjectError(
            "no GitOps repo: pass --repo, set GITOPS_REPO or [tool.mlops].gitops-repo"
        )
    if settings.gitops_repo_is_default and os.environ.get("CI"):
        raise ProjectError(
            f"GITOPS_REPO is not set: in CI the embedded default {settings.gitops_repo} would be "
            "a throwaway repo on this runner; set GITOPS_REPO (and GITOPS_TOKEN) as CI variables"
        )
    if settings.gitops_repo_is_default:
        ensure_local_repo(settings.gitops_repo)
    return settings.gitops_repo


def branch_of(given: str | None, settings: Settings) -> str:
    branch = given or current_branch(settings.root)
    if not branch:
        raise ProjectError("no branch: pass --branch or set DEPLOY_BRANCH")
    return branch


def env_dir(worktree: Path, project: str, env: str) -> Path:
    return worktree / "envs" / project / env


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def report(outcome: Outcome, what: str) -> None:
    if outcome.committed:
        print(f"{what}: committed and pushed ({outcome.attempts - 1} retries)")
    else:
        print(f"{what}: nothing to do")


def remover(
    project: str, envs: list[str], removed_models: dict[str, str | None]
) -> Callable[[Path], None]:
    """An edit deleting env directories; it remembers each env's model for the alias cleanup."""

    def remove(worktree: Path) -> None:
        removed_models.clear()
        for env in envs:
            target = env_dir(worktree, project, env)
            if target.is_dir():
                lineage = load_values(target / "values.yaml").get("lineage", {})
                removed_models[env] = lineage.get("modelName")
                shutil.rmtree(target)

    return remove
