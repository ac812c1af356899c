"""Time batch scoring of a generated project on synthetic data (not a test).

    .venv/bin/python scripts/bench_score.py [--rows 1000000] [--formats csv,parquet]

For each size it bakes a project with scripts/bench_train.py's synthetic classification data
(20 numeric and 3 categorical columns, 2% missing), trains it (not timed), then times, each in a
fresh process the same way, `make score` of the whole file and the floor: read the same file and
`predict_proba` it in one go with the same model. It prints one table per size with the goal
(make score within 1.5x the floor) and the peak RSS of both: make score reads in chunks, so its
memory should not grow with the file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench_train import CSV, MODEL_VENV, fresh_project, timed, verdict

PYTHON = ["env", "PYTHONPATH=src:.", str(MODEL_VENV / "bin" / "python"), "-c"]
TO_PARQUET = f"import pandas as pd; pd.read_csv({CSV!r}).to_parquet('data/input.parquet')"
# The floor: read the whole file and predict it, nothing else (no output written).
FLOOR = """
import sys
import pandas as pd
from {package}.data import read_schema
from {package}.evaluate import load_model
schema, model, path = read_schema(), load_model(), sys.argv[1]
names = [f["name"] for f in schema["features"]]
text = {{f["name"]: str for f in schema["features"] if f["kind"] == "categorical"}}
frame = pd.read_parquet(path, columns=names) if path.endswith(".parquet") else pd.read_csv(
    path, usecols=names, dtype=text
)
model.predict_proba(frame)
"""


def bench(rows: int, formats: list[str]) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-score-") as workdir:
        project = fresh_project(Path(workdir), rows, "classification", "default")
        timed(["make", "train"], project)
        package = next(project.glob("src/*/__init__.py")).parent.name
        timed([*PYTHON, TO_PARQUET], project)
        inputs = {"csv": CSV, "parquet": "data/input.parquet"}
        results = {}
        for kind in formats:
            command = ["make", "score", f"INPUT={inputs[kind]}", f"OUTPUT=build/scores.{kind}"]
            score, score_rss, _ = timed(command, project)
            floor, floor_rss, _ = timed(
                [*PYTHON, FLOOR.format(package=package), inputs[kind]], project
            )
            results[kind] = {
                "score": score,
                "floor": floor,
                "score_rss": score_rss,
                "floor_rss": floor_rss,
            }
    return results


def table(rows: int, results: dict[str, dict[str, float]]) -> str:
    header = (
        "format", "make score s", "floor s", "score/floor", "rows/s",
        "make score peak RSS MB", "floor peak RSS MB",
    )  # fmt: skip
    lines = [f"{rows:,} rows", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, r in results.items():
        ratio = r["score"] / r["floor"]
        cells = (
            kind, f"{r['score']:.1f}", f"{r['floor']:.1f}", f"{ratio:.2f} ({verdict(ratio <= 1.5)})",
            f"{rows / r['score']:,.0f}", f"{r['score_rss']:.0f}", f"{r['floor_rss']:.0f}",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000", help="sizes, comma-separated")
    parser.add_argument("--formats", default="csv,parquet")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for rows in (int(n) for n in args.rows.split(",")):
        print(table(rows, bench(rows, args.formats.split(","))), flush=True)


if __name__ == "__main__":
    main()
