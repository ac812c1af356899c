"""`gc`: remove the environments whose branch is gone or whose TTL passed (never production)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package }}.errors import ProjectError

from .. import model_registry
from ..commands import git_output, run_command
from ..naming import PRODUCTION, env_name
from ..settings import Settings
from .environments import checked_settings, gitops_repo, parse_time, remover, report
from .repo import transact
from .values import load_values

TTL = re.compile(r"^(\d+)([smhdw])$")
TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_ttl(text: str) -> timedelta:
    match = TTL.match(text)
    if not match:
        raise ProjectError(f"--ttl {text!r}: use a number and one of s, m, h, d, w (e.g. 7d)")
    return timedelta(**{TTL_UNITS[match[2]]: int(match[1])})


def remote_branches(root: Path, remote: str) -> list[str]:
    """Branch names on a git remote of the model repo (`git ls-remote --heads`)."""
    listed = run_command(["git", "ls-remote", "--heads", "--", remote], root)
    heads = [line.split("\t", 1)[1] for line in listed.splitlines() if "\t" in line]
    branches = [head.removeprefix("refs/heads/") for head in heads]
    if not branches:
        # An empty answer would mark every environment stale; trust it only when explicit.
        raise ProjectError(f"git ls-remote {remote} lists no branches; pass --live-branch instead")
    return branches


def live_envs(args: argparse.Namespace, settings: Settings) -> set[str] | None:
    """Env names of the branches that still exist, or None to skip the branch check."""
    if args.live_branch is not None:
        branches = [b for chunk in args.live_branch for b in chunk.split()]
    elif args.remote:
        branches = remote_branches(settings.root, args.remote)
    elif git_output(settings.root, "remote", "get-url", "origin") is not None:
        branches = remote_branches(settings.root, "origin")
    else:
        print("no --live-branch, --remote or origin remote: not checking for deleted branches")
        return None
    return {env_name(b, settings.default_branch) for b in branches}


def expired(values: dict[str, Any], cutoff: datetime | None) -> bool:
    deployed = values.get("lineage", {}).get("deployedAt")
    if cutoff is None or not deployed:
        return False
    try:
        return parse_time(str(deployed)) < cutoff
    except ValueError:
        return False


def gc_plan(worktree: Path, project: str, live: set[str] | None, cutoff) -> dict[str, str]:
    """Which env directories to remove and why; production is never in it."""
    plan: dict[str, str] = {}
    project_dir = worktree / "envs" / project
    envs = (
        sorted(p.name for p in project_dir.iterdir() if p.is_dir()) if project_dir.is_dir() else []
    )
    for env in envs:
        if env == PRODUCTION:
            continue
        if live is not None and env not in live:
            plan[env] = "branch is gone"
        elif expired(load_values(project_dir / env / "values.yaml"), cutoff):
            plan[env] = "TTL passed"
    return plan


def cmd_gc(args: argparse.Namespace) -> None:
    settings = checked_settings(args.project, args.default_branch, args.repo)
    live = live_envs(args, settings)
    cutoff = datetime.now(UTC) - parse_ttl(args.ttl) if args.ttl else None
    removed: dict[str, str | None] = {}

    def change(worktree: Path) -> str | None:
        plan = gc_plan(worktree, settings.project, live, cutoff)
        for env, reason in plan.items():
            print(
                f"{'would remove' if args.dry_run else 'remove'} {settings.project}/{env}: {reason}"
            )
        if args.dry_run or not plan:
            return None
        remover(settings.project, list(plan), removed)(worktree)
        lines = "".join(f"- {env}: {reason}\n" for env, reason in plan.items())
        return f"gc {settings.project}: remove {len(plan)} environment(s)\n\n{lines}"

    report(transact(gitops_repo(settings), change), f"gc {settings.project}")
    for gone, model in removed.items():
        model_registry.delete_alias(settings.mlflow_tracking_uri, model, gone)
