"""Finish the generated repository: drop directories left empty by unchosen options, record the
template commit for cruft, then `git init` and a first commit. Only plain text is written, so no
heavy tool is needed here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_BRANCH: str = {{ cookiecutter.default_branch | jsonify }}
AUTHOR: str = {{ cookiecutter.author | jsonify }}
# Set by cookiecutter (relative to the shell's PWD); cruft passes `_commit` instead.
REPO_DIR: str | None = json.loads({{ cookiecutter.get("_repo_dir") | jsonify | jsonify }})
CRUFT_STATE = ".cruft.json"


def remove_empty_dirs(root: Path) -> None:
    """Conditional file names render to nothing for unchosen options; prune what they emptied."""
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        path = Path(dirpath)
        if path != root and ".git" not in path.parts and not any(path.iterdir()):
            path.rmdir()


def template_commit() -> str | None:
    """HEAD of the template checkout when it is a git repository (cruft clones and compares it)."""
    if not REPO_DIR or shutil.which("git") is None:
        return None
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=Path(os.environ.get("PWD", ".")) / REPO_DIR,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def record_template_commit(root: Path) -> None:
    """cookiecutter does not know the template commit that `.cruft.json` needs; fill it in."""
    path = root / CRUFT_STATE
    state = json.loads(path.read_text(encoding="utf-8"))
    if state["commit"] is None:
        state["commit"] = template_commit()
        path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


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
    record_template_commit(root)
    init_repository(root)


if __name__ == "__main__":
    main()
