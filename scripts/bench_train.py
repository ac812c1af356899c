"""Time the training loop of a generated project on synthetic data of growing size (not a test).

    .venv/bin/python scripts/bench_train.py [--rows 10000,100000,1000000]
        [--tasks classification,regression] [--models default,hist_gradient_boosting]

For each size, task and estimator it bakes a fresh project, runs `make setup` (not timed),
replaces the sample with a synthetic CSV (20 numeric and 3 categorical columns, 2% missing),
commits it, then times `make train` cold, the floor (read the raw CSV + fit + predict the test
split in one process), `make train` with nothing changed and `make reproduce`, and prints one
table per size with the issue's goals: cold <= 1.5x the floor, no-op <= 1.5 s, reproduce <= 1.2x
cold, peak RSS <= 3x the DataFrame. It uses the tests' shared model venv and uv cache.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
MODEL_VENV = TEMPLATE / ".cache" / "model-venv"
ENV = {
    **os.environ,
    "UV_PROJECT_ENVIRONMENT": str(MODEL_VENV),
    "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(TEMPLATE / ".cache" / "uv")),
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}
for leaked in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI"):
    ENV.pop(leaked, None)
# Runs a command and reports the peak RSS (KB) of its largest process on stderr's last line.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)
DATASET = {"classification": "breast_cancer", "regression": "diabetes"}
CSV = "data/raw/synthetic.csv"

# The floor: what the pipeline exists for, in one process, with the project's own reader.
FLOOR = """
import sys, time
start = time.perf_counter()
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from {package}.config import load_params
from {package}.data import features_and_target, infer_schema, read_raw
from {package}.model import build_pipeline
params = load_params()
frame = read_raw(params.data)
schema = infer_schema(frame, params.data)
stratify = frame[params.data.target] if params.data.task == "classification" else None
train, test = train_test_split(
    frame, test_size=params.data.test_size, random_state=params.data.seed, stratify=stratify
)
with threadpool_limits(limits=1):
    model = build_pipeline(schema, params.train).fit(*features_and_target(train, schema))
    model.predict(features_and_target(test, schema)[0])
print(time.perf_counter() - start, frame.memory_usage(deep=True).sum())
"""


def synthetic(rows: int, task: str, seed: int = 0) -> pd.DataFrame:
    """Mixed tabular data: 20 numeric columns of several scales, 3 categorical ones, 2% missing,
    and a target that depends on both (noisy, so the models have work to do)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 20)) * np.logspace(-2, 3, 20)
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(20)])
    for i, levels in enumerate((5, 12, 40)):
        frame[f"c{i}"] = rng.choice([f"level{j}" for j in range(levels)], rows)
    signal = numeric[:, :5] @ (1 / np.logspace(-2, 3, 20)[:5]) + (frame["c0"] == "level1") * 2
    signal = signal + rng.normal(size=rows)
    for column in frame.columns:
        frame.loc[rng.random(rows) < 0.02, column] = np.nan
    frame["target"] = np.where(signal > 0, "yes", "no") if task == "classification" else signal
    return frame


def timed(command: list[str], project: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the largest process, and stdout; stops on failure."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return elapsed, int(result.stderr.split()[-1]) / 1024, result.stdout


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, env=ENV, check=True, capture_output=True)


def fresh_project(workdir: Path, rows: int, task: str, model: str) -> Path:
    """A committed project whose data is the synthetic CSV and whose estimator is `model`."""
    project = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(workdir),
            extra_context={"dataset": DATASET[task]},
        )
    )
    timed(["make", "setup"], project)
    synthetic(rows, task).to_csv(project / CSV, index=False)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(path=CSV, target="target")
    if model != "default":
        params["train"].update(model=model, hyperparameters={})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    timed([str(MODEL_VENV / "bin" / "python"), "-m", "dvc", "add", "--quiet", CSV], project)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "-m", "synthetic data")
    return project


def bench(rows: int, task: str, model: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as workdir:
        project = fresh_project(Path(workdir), rows, task, model)
        cold, rss, _ = timed(["make", "train"], project)
        package = next(project.glob("src/*/__init__.py")).parent.name
        python = ["env", "PYTHONPATH=src", str(MODEL_VENV / "bin" / "python"), "-c"]
        python.append(FLOOR.format(package=package))
        _, _, out = timed(python, project)
        floor, frame_bytes = (float(v) for v in out.split())
        noop, _, _ = timed(["make", "train"], project)
        reproduce, _, _ = timed(["make", "reproduce"], project)
    return {
        "cold": cold,
        "floor": floor,
        "noop": noop,
        "reproduce": reproduce,
        "rss": rss,
        "frame": frame_bytes / 2**20,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table(rows: int, results: dict[tuple[str, str], dict[str, float]]) -> str:
    header = (
        "task", "model", "train cold s", "floor s", "cold/floor", "no-op s", "reproduce s",
        "reproduce/cold", "peak RSS MB", "frame MB", "RSS/frame",
    )  # fmt: skip
    lines = [f"{rows:,} rows", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (task, model), r in results.items():
        ratio, again, memory = (
            r["cold"] / r["floor"],
            r["reproduce"] / r["cold"],
            r["rss"] / r["frame"],
        )
        cells = (
            task, model, f"{r['cold']:.1f}", f"{r['floor']:.1f}",
            f"{ratio:.2f} ({verdict(ratio <= 1.5)})", f"{r['noop']:.1f} ({verdict(r['noop'] <= 1.5)})",
            f"{r['reproduce']:.1f}", f"{again:.2f} ({verdict(again <= 1.2)})",
            f"{r['rss']:.0f}", f"{r['frame']:.0f}", f"{memory:.1f} ({verdict(memory <= 3)})",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--tasks", default="classification,regression")
    parser.add_argument("--models", default="default,hist_gradient_boosting")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for rows in (int(n) for n in args.rows.split(",")):
        results = {
            (task, model): bench(rows, task, model)
            for task in args.tasks.split(",")
            for model in args.models.split(",")
        }
        print(table(rows, results), flush=True)


if __name__ == "__main__":
    main()
