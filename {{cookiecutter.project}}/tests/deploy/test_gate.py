"""The production gate's verdicts (deploy/gate.py)."""

from __future__ import annotations

import json

import pytest

from deploy import gate
from deploy.params import GateParams

ACCURACY = GateParams(metric="accuracy", higher_is_better=True, max_regression=0.01)
RMSE = GateParams(metric="rmse", higher_is_better=False, max_regression=0.0)


@pytest.mark.parametrize(
    ("params", "new", "production", "passed"),
    [
        (ACCURACY, 0.95, 0.95, True),
        (ACCURACY, 0.941, 0.95, True),  # within max_regression
        (ACCURACY, 0.93, 0.95, False),
        (RMSE, 10.0, 10.5, True),
        (RMSE, 10.6, 10.5, False),
    ],
)
def test_judge(params: GateParams, new: float, production: float, passed: bool) -> None:
    verdict = gate.judge(params, new, {"metric": params.metric, "value": production})
    assert verdict.passed is passed
    assert verdict.summary.endswith("PASS" if passed else "FAIL")
    assert f"production={production}" in verdict.summary


def test_no_baseline_passes_and_a_missing_metric_fails() -> None:
    assert gate.judge(ACCURACY, 0.5, {}).passed
    # A baseline for another metric is no baseline.
    assert gate.judge(ACCURACY, 0.5, {"metric": "f1_macro", "value": 0.9}).passed
    missing = gate.judge(ACCURACY, None, {"metric": "accuracy", "value": 0.9})
    assert not missing.passed and "no 'accuracy' metric" in missing.summary


def test_the_record_is_the_next_baseline() -> None:
    lineage = {"modelVersion": "3", "mlflowRunId": "abc", "gitCommit": "f00"}
    record = json.loads(gate.record(ACCURACY, 0.97, lineage))
    assert record == {
        "metric": "accuracy",
        "value": 0.97,
        "higher_is_better": True,
        "modelVersion": "3",
        "mlflowRunId": "abc",
        "gitCommit": "f00",
    }
    assert not gate.judge(ACCURACY, 0.9, record).passed
