"""scripts/bench_train.py and scripts/bench_score.py run on a small size and print their tables
(not a timing check)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers.project import exclusive, run

pytestmark = pytest.mark.slow


def test_the_scale_benchmark_prints_its_table(template_dir: Path, model_env: dict[str, str]):
    command = [sys.executable, "scripts/bench_train.py", "--rows", "2000"]
    command += ["--tasks", "regression", "--models", "hist_gradient_boosting"]
    with exclusive("model-venv"):  # it runs `make setup` on the shared venv
        result = run(command, template_dir, model_env)
    lines = result.stdout.splitlines()
    assert "2,000 rows" in lines
    header = next(line for line in lines if line.startswith("| task |"))
    assert "| train cold s | floor s | cold/floor | no-op s | reproduce s |" in header
    [row] = [line for line in lines if line.startswith("| regression | hist_gradient_boosting |")]
    assert len(row.split("|")) == len(header.split("|")) and "met" in row


def test_the_batch_score_benchmark_prints_its_table(template_dir: Path, model_env: dict[str, str]):
    command = [sys.executable, "scripts/bench_score.py", "--rows", "2000"]
    with exclusive("model-venv"):
        result = run(command, template_dir, model_env)
    lines = result.stdout.splitlines()
    assert "2,000 rows" in lines
    header = next(line for line in lines if line.startswith("| format |"))
    assert "| make score s | floor s | score/floor | rows/s |" in header
    for kind in ("csv", "parquet"):
        [row] = [line for line in lines if line.startswith(f"| {kind} |")]
        assert len(row.split("|")) == len(header.split("|")) and "met" in row
