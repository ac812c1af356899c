"""The prediction log: a sample of requests as JSON lines (time, model version, the features and the
prediction), for audits and `make drift INPUT=<log>`. Off unless SERVICE_PREDICTION_LOG is set.

It records what clients sent, which may be personal data: turn it on only where that is allowed,
and mind who can read the files. The request never waits for it: records go into a bounded queue
that a thread writes out, and when the queue is full they are dropped (and counted). A file is
rotated at SERVICE_PREDICTION_LOG_MAX_BYTES with SERVICE_PREDICTION_LOG_BACKUPS old files kept;
each worker process writes its own file (`<name>.<pid><suffix>`), so rotation never races.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import random
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

QUEUE_RECORDS = 10_000
DROPPED = Counter("model_prediction_log_dropped", "Prediction log records dropped (queue full)")


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Never blocks: a full queue drops the record."""

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            DROPPED.inc()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # the message is already the JSON line: skip the formatting copy


class PredictionLog:
    def __init__(self, target: str, rate: float, max_bytes: int, backups: int) -> None:
        self.target, self.rate, self.max_bytes, self.backups = target, rate, max_bytes, backups
        self.logger: logging.Logger | None = None

    def start(self) -> logging.Logger:
        """On first use, in the worker: the server's main process imports the service too."""
        if self.target == "stdout":
            handler: logging.Handler = logging.StreamHandler(sys.stdout)
        else:
            path = Path(self.target)
            path = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=self.max_bytes, backupCount=self.backups, encoding="utf-8"
            )
        handler.setFormatter(logging.Formatter("%(message)s"))
        records: queue.Queue = queue.Queue(QUEUE_RECORDS)
        logger = logging.getLogger(f"{__name__}.{os.getpid()}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(DroppingQueueHandler(records))
        self.listener = logging.handlers.QueueListener(records, handler)
        self.listener.start()
        return logger

    def record(
        self, columns: list[str], rows: list[list[Any]], results: list[dict], version: str
    ) -> None:
        self.logger = self.logger or self.start()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for row, result in zip(rows, results, strict=True):
            if self.rate < 1 and random.random() >= self.rate:  # noqa: S311 - sampling, not security
                continue
            line = {
                "time": now,
                "model_version": version,
                "features": dict(zip(columns, row, strict=True)),
                **result,
            }
            self.logger.info(json.dumps(line))


def from_environment() -> PredictionLog | None:
    target = os.environ.get("SERVICE_PREDICTION_LOG", "")
    if not target:
        return None
    rate = float(os.environ.get("SERVICE_PREDICTION_LOG_RATE", "1.0"))
    if not 0 < rate <= 1:
        raise ValueError(f"SERVICE_PREDICTION_LOG_RATE={rate}: must be in (0, 1]")
    max_bytes = int(os.environ.get("SERVICE_PREDICTION_LOG_MAX_BYTES", str(50 * 1024 * 1024)))
    backups = int(os.environ.get("SERVICE_PREDICTION_LOG_BACKUPS", "3"))
    return PredictionLog(target, rate, max_bytes, backups)
