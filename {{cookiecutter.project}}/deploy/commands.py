"""The git and DVC commands the toolkit runs, and what it asks git about the checkout.

Arguments are always a list (never a shell), and `--` ends the options wherever a branch name
or path follows, so that user-controlled strings stay data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError

# Where CI systems put the branch name, in order of preference (GitHub sets GITHUB_HEAD_REF only
# for pull requests, where GITHUB_REF_NAME would be the merge ref).
BRANCH_ENV_VARS = ("DEPLOY_BRANCH", "CI_COMMIT_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_REF_NAME")
COMMIT_ENV_VARS = ("CI_COMMIT_SHA", "GITHUB_SHA")


def run_command(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Its standard output; a failure stops with the command's own message."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise ProjectError(f"`{' '.join(args[:4])} ...` failed in {cwd}:\n{output}")
    return result.stdout


def dvc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return run_command([sys.executable, "-m", "dvc", *args], cwd, env)


def git_output(root: Path, *args: str) -> str | None:
    """git's answer, or None when git fails (not a repository, no such ref, ...)."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def current_branch(root: Path) -> str | None:
    """The branch being built: CI variables first, then the checkout's HEAD."""
    for var in BRANCH_ENV_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return git_output(root, "symbolic-ref", "--quiet", "--short", "HEAD") or None


def head_commit(root: Path) -> str | None:
    """The commit being built: CI variables first, then the checkout's HEAD."""
    for var in COMMIT_ENV_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return git_output(root, "rev-parse", "--verify", "--quiet", "HEAD") or None


def is_dirty(root: Path) -> bool:
    """Uncommitted changes to tracked files (DVC outputs are git-ignored, so they do not count)."""
    status = git_output(root, "status", "--porcelain", "--untracked-files=no")
    return status is None or bool(status)
