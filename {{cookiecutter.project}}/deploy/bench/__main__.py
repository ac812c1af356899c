"""`make bench` (`python -m deploy.bench`): throughput and latency of the built Bento against the
usual alternatives.

On the same model and machine, in one run, single-record POSTs at 1, 8 and 32 concurrent clients
(wrk + post.lua) against: the Bento (`bentoml serve`), `mlflow models serve` on the same
registered model version, a plain FastAPI + uvicorn app with the model in process, and finally
in-process `model.predict_proba` on one row (the ceiling, one thread). Prints a table and writes
build/bench.json. Needs `make train bento` first and `wrk` (Debian package `wrk`).

Options by environment: BENCH_SECONDS (per point, default 10), BENCH_CLIENTS (default "1 8 32").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package }}.errors import ProjectError, run

from ..artifacts import BentoRecord
from ..bento import bentoml_home
from ..settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = [int(n) for n in os.environ.get("BENCH_CLIENTS", "1 8 32").split()]
WARMUP_SECONDS = 3
STARTUP_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http://127.0.0.1
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {STARTUP_TIMEOUT} s")


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and all its children (server, workers)."""
    import psutil  # a BentoML dependency

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@contextmanager
def server(command: list[str], health: str, env: dict[str, str]) -> Iterator[int]:
    """Run a server in its own process group until the block ends; yields its pid."""
    log = open(ROOT / "build" / "bench-server.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_ready(health, process)
        yield process.pid
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its workers (its whole process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wrk(url: str, body: Path, clients: int, seconds: int) -> dict[str, Any]:
    """One wrk run; 2xx-only throughput and latency percentiles from post.lua's JSON line."""
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(BENCH / "post.lua"),
        url,
    ]
    env = {**os.environ, "WRK_BODY_FILE": str(body)}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    ok = result["requests"] - result["status_errors"]
    return {
        "clients": clients,
        "rps": ok / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["status_errors"] + result["socket_errors"],
    }


def measure(name: str, url: str, body: Path, pid: int) -> list[dict[str, Any]]:
    """wrk at each client count. CPU ms per request (the server's CPU time over its 2xx answers)
    hardly depends on what else runs on the machine, unlike req/s and latency."""
    wrk(url, body, max(CLIENTS), WARMUP_SECONDS)
    rows = []
    for clients in CLIENTS:
        before = cpu_seconds(pid)
        row = {"server": name, **wrk(url, body, clients, SECONDS)}
        row["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / max(row["rps"] * SECONDS, 1)
        print(
            f"  {name:<14} {clients:>3} clients: {row['rps']:8.0f} req/s, "
            f"{row['cpu_ms']:.1f} CPU ms/req",
            flush=True,
        )
        rows.append(row)
    return rows


def in_process(predict: Callable[[], Any]) -> dict[str, Any]:
    """The ceiling: the model alone as the service calls it, one row at a time, one thread."""
    timings = []
    cpu_start = time.process_time()
    deadline = time.perf_counter() + SECONDS
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        predict()
        timings.append(time.perf_counter() - start)
    quantiles = statistics.quantiles(timings, n=100)
    return {
        "server": "in-process",
        "clients": 1,
        "rps": len(timings) / sum(timings),
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": 0,
        "cpu_ms": (time.process_time() - cpu_start) * 1000 / len(timings),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table; ratios compare each server with mlflow and FastAPI at the same clients."""
    by_key = {(row["server"], row["clients"]): row["rps"] for row in rows}
    lines = [
        "| server | clients | req/s (2xx) | p50 ms | p99 ms | errors | CPU ms/req | x mlflow | x fastapi |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratios = [
            f"{row['rps'] / base:.1f}" if (base := by_key.get((other, row["clients"]))) else "-"
            for other in ("mlflow serve", "fastapi")
        ]
        lines.append(
            f"| {row['server']} | {row['clients']} | {row['rps']:.0f} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['errors']} | {row['cpu_ms']:.1f} | {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    if not shutil.which("wrk"):
        raise ProjectError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    settings = load_settings()
    built = BentoRecord.require(ROOT)
    env = {
        **os.environ,
        # mlflow models serve starts `uvicorn` by name.
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "BENTOML_HOME": str(bentoml_home(settings.project)),
    }
    os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]  # the in-process run reads the same store
    # Imported once the store is known: the service module loads the model's schema on import.
    from {{ cookiecutter.__package }} import service
    from {{ cookiecutter.__package }}.serving import runtime
    from {{ cookiecutter.__package }}.serving.api import load_model
    from {{ cookiecutter.__package }}.serving.fastpath import model_input

    api = service.API
    # One real record: the first test row the model was evaluated on.
    example = first_record(api.schema)
    one_row = api.rows([api.Record.model_validate(example)])
    # The model as the service calls it: NumPy preprocessing where it is exact, else a frame.
    estimator, prepare = model_input(load_model(service.MODEL), api.columns, api.numeric)
    method = estimator.predict_proba if api.is_classifier else estimator.predict
    bodies = {
        "record": ROOT / "build" / "bench-record.json",
        "mlflow": ROOT / "build" / "bench-mlflow.json",
    }
    bodies["record"].write_text(json.dumps(example), encoding="utf-8")
    bodies["mlflow"].write_text(
        json.dumps(
            {"dataframe_split": {"columns": list(example), "data": [list(example.values())]}}
        ),
        encoding="utf-8",
    )

    rows: list[dict[str, Any]] = []
    port = free_port()
    print(
        f"bento {built.tag} (model {built.model_name} v{built.model_version}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    bento_cmd = [
        str(BIN / "bentoml"),
        "serve",
        built.tag,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with server(bento_cmd, f"http://127.0.0.1:{port}/readyz", env) as pid:
        rows += measure("bento", f"http://127.0.0.1:{port}/predict", bodies["record"], pid)

    port = free_port()
    model_uri = f"models:/{built.model_name}/{built.model_version}"
    mlflow_cmd = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # The credentials, if any, come from the settings: records never hold them.
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    with server(mlflow_cmd, f"http://127.0.0.1:{port}/ping", mlflow_env) as pid:
        rows += measure(
            "mlflow serve", f"http://127.0.0.1:{port}/invocations", bodies["mlflow"], pid
        )

    port = free_port()
    fastapi_cmd = [
        str(BIN / "uvicorn"),
        "deploy.bench.fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(runtime.WORKERS),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with server(fastapi_cmd, f"http://127.0.0.1:{port}/health", env) as pid:
        rows += measure("fastapi", f"http://127.0.0.1:{port}/predict", bodies["record"], pid)

    rows.append(in_process(lambda: method(prepare(one_row))))
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews results)"
    )
    print(table(rows))
    out = ROOT / "build" / "bench.json"
    out.write_text(json.dumps({"bento": built.tag, "rows": rows}, indent=2) + "\n")


def first_record(schema: dict[str, Any]) -> dict[str, Any]:
    """The first row of the raw data, as a request record."""
    import pandas as pd

    kinds = {feature["name"]: feature["kind"] for feature in schema["features"]}
    for candidate in sorted((ROOT / "data" / "raw").glob("*.csv")):
        frame = pd.read_csv(candidate, nrows=1, dtype=str, keep_default_na=True)
        if set(kinds) <= set(frame.columns):
            row = frame[list(kinds)].iloc[0]
            return {
                name: None
                if pd.isna(value)
                else value
                if kinds[name] == "categorical"
                else float(value)
                for name, value in row.items()
            }
    raise ProjectError("no CSV under data/raw/ has the model's feature columns; run `make train`")


if __name__ == "__main__":
    run(main)
