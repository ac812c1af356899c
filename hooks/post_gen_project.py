"""Finish the generated repository: drop directories left empty by unchosen options, then
`git init` and a first commit. Only plain text is written, so no heavy tool is needed here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_BRANCH: str = {{ cookiecutter.default_branch | jsonify }}
AUTHOR: str = {{ cookiecutter.author | jsonify }}


def remove_empty_dirs(root: Path) -> None:
    """Conditional file names render to nothing for unchosen options; prune what they emptied."""
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        path = Path(dirpath)
        if path != root and ".git" not in path.parts and not any(path.iterdir()):
            path.rmdir()


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, stdout=subprocess.DEVNULL)


def git_identity(root: Path) -> list[str]:
    """Use the user's git identity; fall back to the template's author only when there is none."""
    found = subprocess.run(
        ["git", "config", "user.email"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return [] if found else ["-c", f"user.name={AUTHOR}", "-c", "user.email=model-team@example.invalid"]


def init_repository(root: Path) -> None:
    if shutil.which("git") is None:
        print("warning: git is not installed; run `git init` yourself", file=sys.stderr)
        return
    git(root, "init", "--quiet", "--initial-branch", DEFAULT_BRANCH)
    git(root, "add", "--all")
    git(root, *git_identity(root), "commit", "--quiet", "--no-verify", "-m", "Initial commit from the model template")


def main() -> None:
    root = Path.cwd()
    remove_empty_dirs(root)
    init_repository(root)


if __name__ == "__main__":
    main()
