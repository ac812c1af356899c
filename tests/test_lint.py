"""The template's own Python (tests, scripts, chart tooling) passes ruff, as generated code must."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.project import TEMPLATE


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=" ".join)
def test_template_code_passes_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
