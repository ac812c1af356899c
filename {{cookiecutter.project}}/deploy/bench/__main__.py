"""`make bench` (`python -m deploy.bench`): throughput and latency of the built Bento against the
usual alternatives, single records and batches.

On the same model and machine, in one run, POSTs (wrk + post.lua) of one record at 1, 8 and 32
concurrent clients, and of BATCH records to /predict_batch at 1 and 2 clients, against: the
Bento (`bentoml serve`; it also gets the same rows as columns on /predict_columns), `mlflow
models serve` on the same registered model version (single records only), a plain FastAPI +
uvicorn app calling the pipeline on a DataFrame, a FastAPI app calling the service's own model
code (the fast path: what is left is the serving stack's cost), and finally in-process predict
on the same rows as the service calls it (the ceiling, one thread; from the columns too). Prints
a table and the goals met or not, and writes build/bench.json. Needs `make train bento` first
and `wrk` (Debian package `wrk`).

Options by environment: BENCH_SECONDS (per point, default 10), BENCH_WARMUP_SECONDS (before each
server's points, default 3), BENCH_CLIENTS (default "1 8 32"), BENCH_BATCH_CLIENTS (default "1 2").
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
BATCH_CLIENTS = [int(n) for n in os.environ.get("BENCH_BATCH_CLIENTS", "1 2").split()]
BATCH = 1000  # records per /predict_batch request: the service's default SERVICE_MAX_BATCH
# The same batch as columns: the Bento's /predict_columns, and in process from those columns.
BENTO_COLUMNS, IN_PROCESS_COLUMNS = "bento (columns)", "in-process (columns)"
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "3"))
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


def measure(
    name: str, url: str, body: Path, pid: int, clients: list[int], records: int = 1
) -> list[dict[str, Any]]:
    """wrk at each client count. CPU ms per request (the server's CPU time over its 2xx answers)
    hardly depends on what else runs on the machine, unlike req/s and latency."""
    wrk(url, body, max(clients), WARMUP_SECONDS)
    rows = []
    for count in clients:
        before = cpu_seconds(pid)
        row = {"server": name, "records": records, **wrk(url, body, count, SECONDS)}
        row["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / max(row["rps"] * SECONDS, 1)
        print(
            f"  {name:<16} {records:>4} records, {count:>3} clients: {row['rps']:8.0f} req/s, "
            f"{row['cpu_ms']:.1f} CPU ms/req",
            flush=True,
        )
        rows.append(row)
    return rows


def in_process(
    predict: Callable[[], Any], records: int, name: str = "in-process"
) -> dict[str, Any]:
    """The ceiling: the model alone as the service calls it, on one request's rows, one thread."""
    timings = []
    cpu_start = time.process_time()
    deadline = time.perf_counter() + SECONDS
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        predict()
        timings.append(time.perf_counter() - start)
    quantiles = statistics.quantiles(timings, n=100)
    return {
        "server": name,
        "records": records,
        "clients": 1,
        "rps": len(timings) / sum(timings),
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": 0,
        "cpu_ms": (time.process_time() - cpu_start) * 1000 / len(timings),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table; ratios compare each server with mlflow and FastAPI at the same request size
    and clients."""
    by_key = {(row["server"], row["records"], row["clients"]): row["rps"] for row in rows}
    lines = [
        "| server | records/req | clients | req/s (2xx) | rows/s | p50 ms | p99 ms | errors "
        "| CPU ms/req | x mlflow | x fastapi |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratios = [
            f"{row['rps'] / base:.1f}"
            if (base := by_key.get((other, row["records"], row["clients"])))
            else "-"
            for other in ("mlflow serve", "fastapi")
        ]
        lines.append(
            f"| {row['server']} | {row['records']} | {row['clients']} | {row['rps']:.0f} "
            f"| {row['rps'] * row['records']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} "
            f"| {row['errors']} | {row['cpu_ms']:.1f} | {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(lines)


def goals(rows: list[dict[str, Any]]) -> str:
    """The goals of issue 16 as a Markdown table, each met or not (or not measured in this run)."""
    found = {(row["server"], row["records"], row["clients"]): row for row in rows}

    def ratio(server: str, other: str, records: int, clients: int) -> float | None:
        a, b = found.get((server, records, clients)), found.get((other, records, clients))
        return a["rps"] / b["rps"] if a and b and b["rps"] else None

    def p99(clients: int) -> float | None:
        row = found.get(("bento", 1, clients))
        return row["p99_ms"] if row else None

    # (goal, measured, ">=" or "<=", bound, unit)
    checks = [
        (
            "bento / mlflow serve, req/s at 32 clients",
            ratio("bento", "mlflow serve", 1, 32),
            ">=",
            10,
            "x",
        ),
        ("bento / fastapi, req/s at 32 clients", ratio("bento", "fastapi", 1, 32), ">=", 1.2, "x"),
        ("bento p99 at 1 client", p99(1), "<=", 5, "ms"),
        ("bento p99 at 8 clients", p99(8), "<=", 25, "ms"),
        (
            f"bento / in-process, rows/s of {BATCH}-record batches at 1 client",
            ratio("bento", "in-process", BATCH, 1),
            ">=",
            0.5,
            "x",
        ),
        (
            f"the same for {BATCH} rows as columns (/predict_columns), against in-process on them",
            ratio(BENTO_COLUMNS, IN_PROCESS_COLUMNS, BATCH, 1),
            ">=",
            0.5,
            "x",
        ),
    ]
    lines = ["| goal | target | measured | |", "|---|---|---:|---|"]
    for goal, value, op, bound, unit in checks:
        if value is None:
            verdict, shown = "not measured", "-"
        else:
            met = value >= bound if op == ">=" else value <= bound
            verdict, shown = ("met" if met else "NOT met"), f"{value:.2f} {unit}"
        lines.append(f"| {goal} | {op} {bound} {unit} | {shown} | {verdict} |")
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
    from {{ cookiecutter.__package }}.serving.inputs import Inputs

    api = service.API
    # Real records: the raw data's first rows (repeated up to BATCH if it has fewer).
    records = raw_records(api.schema, BATCH)
    example = records[0]
    # The model as the service calls it: NumPy preprocessing where it is exact, else a frame.
    estimator, prepare = model_input(load_model(service.MODEL), api.columns, api.numeric)
    method = estimator.predict_proba if api.is_classifier else estimator.predict
    bodies = {
        "record": {"path": "bench-record.json", "data": example},
        "batch": {"path": "bench-batch.json", "data": {"records": records}},
        "columns": {
            "path": "bench-columns.json",
            "data": {"columns": {name: [r[name] for r in records] for name in api.columns}},
        },
        "mlflow": {
            "path": "bench-mlflow.json",
            "data": {
                "dataframe_split": {"columns": list(example), "data": [list(example.values())]}
            },
        },
    }
    body = {name: ROOT / "build" / spec["path"] for name, spec in bodies.items()}
    for name, spec in bodies.items():
        body[name].write_text(json.dumps(spec["data"]), encoding="utf-8")

    def peer(
        name: str, command: list[str], health: str, server_env: dict[str, str]
    ) -> list[dict[str, Any]]:
        """One server: single records at CLIENTS, then batches at BATCH_CLIENTS where it has them."""
        with server(command, health, server_env) as pid:
            base = health.rsplit("/", 1)[0]
            if name == "mlflow serve":
                return measure(name, f"{base}/invocations", body["mlflow"], pid, CLIENTS)
            rows = measure(name, f"{base}/predict", body["record"], pid, CLIENTS)
            rows += measure(name, f"{base}/predict_batch", body["batch"], pid, BATCH_CLIENTS, BATCH)
            if name == "bento":
                url = f"{base}/predict_columns"
                rows += measure(BENTO_COLUMNS, url, body["columns"], pid, BATCH_CLIENTS, BATCH)
            return rows

    print(
        f"bento {built.tag} (model {built.model_name} v{built.model_version}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    rows: list[dict[str, Any]] = []
    port = free_port()
    bento_cmd = [
        str(BIN / "bentoml"),
        "serve",
        built.tag,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    rows += peer("bento", bento_cmd, f"http://127.0.0.1:{port}/readyz", env)

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
    rows += peer("mlflow serve", mlflow_cmd, f"http://127.0.0.1:{port}/ping", mlflow_env)

    for name, factory in (("fastapi", "plain"), ("fastapi+fastpath", "fastpath")):
        port = free_port()
        fastapi_cmd = [
            str(BIN / "uvicorn"),
            "--factory",
            f"deploy.bench.fastapi_app:{factory}",
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
        rows += peer(name, fastapi_cmd, f"http://127.0.0.1:{port}/health", env)

    numeric = api.numeric
    for data in ([example], records):
        batch = api.rows([api.Record.model_validate(record) for record in data])
        # The rows to arrays as the service does it (once), the preprocessing and the model.
        rows.append(
            in_process(lambda b=batch: method(prepare(Inputs.from_rows(b, numeric))), len(batch))
        )
    columns = api.column_values(api.ColumnBatch.model_validate(bodies["columns"]["data"]))

    def columnar() -> Any:
        return method(prepare(Inputs.from_columns(columns, numeric)))

    rows.append(in_process(columnar, BATCH, IN_PROCESS_COLUMNS))
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews results)"
    )
    print(table(rows))
    print()
    print(goals(rows))
    out = ROOT / "build" / "bench.json"
    out.write_text(json.dumps({"bento": built.tag, "rows": rows}, indent=2) + "\n")


def raw_records(schema: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The first `count` rows of the raw data as request records, repeated if it has fewer."""
    import pandas as pd

    kinds = {feature["name"]: feature["kind"] for feature in schema["features"]}
    for candidate in sorted((ROOT / "data" / "raw").glob("*.csv")):
        frame = pd.read_csv(candidate, nrows=count, dtype=str, keep_default_na=True)
        if set(kinds) <= set(frame.columns) and len(frame):
            records = [
                {
                    name: None
                    if pd.isna(value)
                    else value
                    if kinds[name] == "categorical"
                    else float(value)
                    for name, value in row.items()
                }
                for _, row in frame[list(kinds)].iterrows()
            ]
            return [records[i % len(records)] for i in range(count)]
    raise ProjectError("no CSV under data/raw/ has the model's feature columns; run `make train`")


if __name__ == "__main__":
    run(main)
