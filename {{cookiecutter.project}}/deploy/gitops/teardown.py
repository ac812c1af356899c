"""`teardown`: remove this branch's environment from the GitOps repo (never production)."""

from __future__ import annotations

import argparse
import json

from {{ cookiecutter.__package }}.errors import ProjectError

from .. import model_registry
from ..naming import PRODUCTION, env_name
from .environments import branch_of, checked_settings, gitops_repo, remover, report
from .repo import transact


def cmd_teardown(args: argparse.Namespace) -> None:
    settings = checked_settings(args.project, args.default_branch, args.repo)
    branch = branch_of(args.branch, settings)
    env = env_name(branch, settings.default_branch)
    if env == PRODUCTION:
        raise ProjectError(f"refusing to tear down production (branch {branch!r})")
    removed: dict[str, str | None] = {}
    remove = remover(settings.project, [env], removed)

    def change(worktree) -> str | None:
        remove(worktree)
        if not removed:
            return None
        return (
            f"teardown {settings.project}/{env}\n\n"
            f"project: {settings.project}\nbranch: {json.dumps(branch, ensure_ascii=False)}\n"
        )

    report(transact(gitops_repo(settings), change), f"teardown {settings.project}/{env}")
    for gone, model in removed.items():
        model_registry.delete_alias(settings.mlflow_tracking_uri, model, gone)
