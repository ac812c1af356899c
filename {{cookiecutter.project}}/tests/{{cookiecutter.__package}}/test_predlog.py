"""The prediction log: off by default, JSON lines that `make drift` reads, sampled, rotated within
its size bound, and never blocking a request."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from {{ cookiecutter.__package }}.serving import predlog

COLUMNS = ["age", "city"]
RESULT = {"prediction": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}


def lines(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("predictions.*"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def dropped() -> float:
    return REGISTRY.get_sample_value("model_prediction_log_dropped_total") or 0.0


def flushed(log: predlog.PredictionLog) -> None:
    log.listener.stop()  # waits for the queue to be written out


def test_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICE_PREDICTION_LOG", raising=False)
    assert predlog.from_environment() is None


def test_records_are_json_lines_with_features_and_version(tmp_path: Path) -> None:
    log = predlog.PredictionLog(str(tmp_path / "predictions.jsonl"), 1.0, 1 << 20, 2)
    log.record(COLUMNS, [[41.0, "lyon"], [None, "paris"]], [RESULT, RESULT], "7")
    flushed(log)
    written = lines(tmp_path)
    assert [r["features"] for r in written] == [
        {"age": 41.0, "city": "lyon"},
        {"age": None, "city": "paris"},
    ]
    assert {r["model_version"] for r in written} == {"7"} and written[0]["prediction"] == "yes"


def test_sampled_and_rotated_within_bounds(tmp_path: Path) -> None:
    log = predlog.PredictionLog(str(tmp_path / "predictions.jsonl"), 0.25, 4096, 2)
    for _ in range(400):
        log.record(COLUMNS, [[1.0, "lyon"]] * 10, [RESULT] * 10, "1")
    flushed(log)
    files = list(tmp_path.iterdir())
    assert len(files) == 3  # the file and two backups
    assert all(path.stat().st_size <= 4096 + 200 for path in files)
    kept = len(lines(tmp_path))
    assert 0 < kept < 4000 * 0.25 * 2


def test_a_full_queue_drops_instead_of_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predlog, "QUEUE_RECORDS", 5)
    log = predlog.PredictionLog(str(tmp_path / "predictions.jsonl"), 1.0, 1 << 20, 1)
    log.logger = log.start()
    log.listener.stop()  # nobody drains the queue any more
    before = dropped()
    started = time.perf_counter()
    log.record(COLUMNS, [[1.0, "lyon"]] * 50, [RESULT] * 50, "1")
    assert time.perf_counter() - started < 1
    assert dropped() - before == 45
