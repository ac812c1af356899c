"""Linters for CI files: schema (check-jsonschema, offline), actionlint, zizmor --offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from helpers.project import TEMPLATE, require_tool

DEV_BIN = TEMPLATE / ".venv" / "bin"


def tool(name: str) -> str:
    """A linter from the dev venv, else from PATH (skips, or fails under CI, when missing)."""
    local = DEV_BIN / name
    return str(local) if local.is_file() else require_tool(name)


def lint(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def schema_errors(files: list[Path], schema: str, cwd: Path) -> str:
    """'' when every file validates against the builtin (vendored, offline) schema."""
    result = lint([tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)], cwd)
    return "" if result.returncode == 0 else result.stdout + result.stderr


def actionlint_errors(root: Path) -> str:
    """actionlint over root/.github/workflows (it runs shellcheck on every `run:` when present)."""
    require_tool("shellcheck")
    result = lint([tool("actionlint"), "-no-color"], root)
    return "" if result.returncode == 0 else result.stdout + result.stderr


def zizmor_findings(root: Path) -> list[dict]:
    """zizmor's findings (every severity and confidence, ignore comments honoured) offline."""
    result = lint(
        [
            tool("zizmor"),
            "--offline",
            "--persona",
            "regular",
            "--format",
            "json",
            "--no-progress",
            str(root / ".github"),
        ],
        root,
    )
    if result.returncode not in (0, 10, 11, 12, 13, 14):  # 1x: findings of some severity
        raise AssertionError(f"zizmor failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(result.stdout or "[]")


def describe(findings: list[dict]) -> str:
    return "\n".join(
        f"{f.get('ident')}: {f.get('desc')} @ "
        + ", ".join(
            f"{loc['symbolic']['key']['Local']['given_path']}"
            for loc in f.get("locations", [])
            if isinstance(loc.get("symbolic", {}).get("key"), dict)
            and "Local" in loc["symbolic"]["key"]
        )
        for f in findings
    )


def has_tool(name: str) -> bool:
    return (DEV_BIN / name).is_file() or shutil.which(name) is not None
