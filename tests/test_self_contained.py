"""The template carries everything its tests read: in a copy of the repository with nothing
beside it (as on a user's machine), the fast suite passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.project import CACHE, TEMPLATE, checkout_files


def lone_copy(destination: Path) -> Path:
    """The files a clone would hold, as a repository of their own (linters look for its root)."""
    copy = destination / "template"
    for name in checkout_files(TEMPLATE):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE / name, target, follow_symlinks=False)
    subprocess.run(["git", "init", "--quiet", "-b", "main"], cwd=copy, check=True)
    return copy


@pytest.mark.slow
def test_fast_suite_passes_with_nothing_beside_the_checkout(tmp_path: Path) -> None:
    # Two levels down in an empty directory: nothing beside the checkout can be found.
    copy = lone_copy(tmp_path / "empty")
    assert sorted(p.name for p in copy.parent.iterdir()) == ["template"]
    # The tools installed for this checkout (dev venv, gitlab-ci-local) run the copy's tests, in
    # one process: the outer suite already uses both cores. Only the fast tests: this one is
    # slow, so it never recurses.
    tools = [str(Path(sys.executable).parent), str(CACHE / "node" / "bin")]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*tools, os.environ["PATH"]]),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv")),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert " passed" in summary and "failed" not in summary, summary
