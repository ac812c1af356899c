"""Time the training loop of a freshly generated project on its sample data (not a test).

    .venv/bin/python scripts/bench_train.py [--repeat N]

Bakes the default project into a temporary directory, runs `make setup` (not timed), then times
`make train` cold, `make train` with nothing changed, and `make reproduce`, and prints a table
with the targets: a no-op under 2 s, reproduce at most 1.5x the cold training.
It uses the same shared model venv and uv cache as the template's tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "UV_PROJECT_ENVIRONMENT": str(TEMPLATE / ".cache" / "model-venv"),
    "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(TEMPLATE / ".cache" / "uv")),
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}
for leaked in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI"):
    ENV.pop(leaked, None)


def make(target: str, project: Path) -> float:
    """Seconds `make target` took; stops the benchmark with its output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        ["make", target], cwd=project, env=ENV, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"make {target} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return elapsed


def fresh_project(workdir: Path) -> Path:
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(workdir)))
    make("setup", project)
    return project


def bench(repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"train (cold)": [], "train (no-op)": [], "reproduce": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-train-") as workdir:
            project = fresh_project(Path(workdir))
            times["train (cold)"].append(make("train", project))
            times["train (no-op)"].append(make("train", project))
            times["reproduce"].append(make("reproduce", project))
    return times


def table(times: dict[str, list[float]]) -> str:
    cold = statistics.median(times["train (cold)"])
    targets = {"train (cold)": None, "train (no-op)": 2.0, "reproduce": 1.5 * cold}
    rows = [("step", "median s", "runs", "target s", "verdict")]
    for step, samples in times.items():
        median, target = statistics.median(samples), targets[step]
        verdict = "-" if target is None else "ok" if median <= target else "OVER"
        limit = "-" if target is None else f"{target:.1f}"
        rows.append((step, f"{median:.2f}", " ".join(f"{s:.1f}" for s in samples), limit, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fresh projects to time (median)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(table(bench(args.repeat)))


if __name__ == "__main__":
    main()
