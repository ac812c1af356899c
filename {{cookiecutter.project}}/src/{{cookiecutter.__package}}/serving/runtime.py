"""How the service runs: its limits and worker count (environment variables of the server), the
prediction metrics on /metrics, and the garbage-collector settings after the model is loaded."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

# Limits that keep one request from taking the service down; override per deployment.
MAX_BATCH = int(os.environ.get("SERVICE_MAX_BATCH", "1000"))
MAX_BODY_BYTES = int(os.environ.get("SERVICE_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
WORKERS = int(os.environ.get("SERVICE_WORKERS", "2"))

# For small CPU models on 2 cores: 2 workers, async endpoints calling the model inline (no thread
# hop; no adaptive batching: it answered 503 under load) and no access log. `make bench` measures
# the result against `mlflow models serve` and FastAPI on this model.
SERVICE_CONFIG = {
    "workers": WORKERS,
    "traffic": {"timeout": 30},
    "logging": {"access": {"enabled": False}},
}

# Served on /metrics next to BentoML's own request metrics (which count 4xx refusals by code);
# BentoML sets up prometheus_client's multiprocess mode before it imports the service.
PREDICTIONS = Counter(
    "model_predictions",
    "Records predicted, by endpoint and outcome",
    labelnames=["endpoint", "outcome"],
)
LATENCY = Histogram(
    "model_predict_seconds",
    "Time spent in the model per request, by endpoint and outcome",
    labelnames=["endpoint", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


@contextmanager
def observe(endpoint: str, records: int) -> Iterator[None]:
    """Count the records and time the model call of one request, by outcome."""
    start, outcome = time.perf_counter(), "error"
    try:
        yield
        outcome = "ok"
    finally:
        LATENCY.labels(endpoint=endpoint, outcome=outcome).observe(time.perf_counter() - start)
        PREDICTIONS.labels(endpoint=endpoint, outcome=outcome).inc(records)


def settle_gc() -> None:
    """Move everything loaded so far out of the garbage collector's view, then collect less often.

    Without the freeze, full collections over the model's objects pushed p99 from ~7 ms to ~80 ms.
    A request's garbage goes by reference counting, and what the server imports later still made
    the default thresholds stall a worker for tens of ms several times a second (measured at 8
    clients: p99 70-110 ms -> 11-17 ms).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)
