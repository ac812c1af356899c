"""`envs`: list this project's environments in the GitOps repo. Read-only, so it is also the
check that the repo is reachable with the configured URL, token and CA."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..urls import redact
from .environments import checked_settings, gitops_repo
from .repo import transact
from .values import load_values


def cmd_envs(args: argparse.Namespace) -> None:
    settings = checked_settings(args.project, args.default_branch, args.repo)
    listed: list[tuple[str, str, str]] = []

    def read(worktree: Path) -> None:
        for values_file in sorted((worktree / "envs" / settings.project).glob("*/values.yaml")):
            lineage = load_values(values_file).get("lineage", {})
            branch, deployed = lineage.get("branch", "?"), lineage.get("deployedAt", "?")
            listed.append((values_file.parent.name, str(branch), str(deployed)))

    repo = gitops_repo(settings)
    transact(repo, read)
    print(f"GitOps repo {redact(repo)}: {len(listed)} environment(s) of {settings.project}")
    for env, branch, deployed in listed:
        print(f"  {env:<28}  deployed {deployed}  from {branch}")
