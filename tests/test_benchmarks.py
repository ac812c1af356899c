"""The benchmarks run on a small size and print their tables (not a timing check): the template's
scripts/bench_train.py and scripts/bench_score.py, and a generated project's `make bench` (the
columns, a row for every server and request size, and every goal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers.project import exclusive, require_tool, run

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


HEADER = (
    "| server | records/req | clients | req/s (2xx) | rows/s | p50 ms | p99 ms | errors "
    "| CPU ms/req | x mlflow | x fastapi |"
)
# (server, records per request): mlflow serve has no batch endpoint; the Bento's batch also goes
# as columns to /predict_columns, against in-process on the same columns.
ROWS = [
    ("bento", 1),
    ("bento", 1000),
    ("bento (columns)", 1000),
    ("mlflow serve", 1),
    ("fastapi", 1),
    ("fastapi", 1000),
    ("fastapi+fastpath", 1),
    ("fastapi+fastpath", 1000),
    ("in-process", 1),
    ("in-process", 1000),
    ("in-process (columns)", 1000),
]
GOALS = 6  # issue 16's, one line each, and the same batch goal for /predict_columns


@pytest.fixture(scope="session")
def wrk() -> str:
    """Looked for before the project is trained: skipped without wrk, failed under CI."""
    return require_tool("wrk")


def test_make_bench_prints_a_row_per_server_and_the_goals(
    wrk: str, bento_project: tuple[Path, dict[str, str]]
) -> None:
    project, env = bento_project
    short = {
        "BENCH_SECONDS": "1",
        "BENCH_WARMUP_SECONDS": "1",
        "BENCH_CLIENTS": "1",
        "BENCH_BATCH_CLIENTS": "1",
    }
    result = run(["make", "bench"], project, {**env, **short}, timeout=300)
    lines = result.stdout.splitlines()
    assert HEADER in lines, result.stdout[-3000:]
    width = len(HEADER.split("|"))
    table = [
        line.split("|") for line in lines if line.startswith("| ") and len(line.split("|")) == width
    ]
    rows = [cells for cells in table if cells[2].strip().isdigit()]
    assert sorted((c[1].strip(), int(c[2])) for c in rows) == sorted(ROWS), result.stdout[-3000:]
    for cells in rows:
        assert cells[3].strip() == "1", cells  # clients
        assert cells[8].strip() == "0", cells  # errors: every request answered 2xx
    goals = [
        line for line in lines if line.endswith(("| met |", "| NOT met |", "| not measured |"))
    ]
    assert "| goal | target | measured | |" in lines and len(goals) == GOALS, result.stdout[-3000:]
    saved = json.loads((project / "build" / "bench.json").read_text(encoding="utf-8"))
    assert len(saved["rows"]) == len(ROWS)
