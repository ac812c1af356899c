"""The production gate's verdicts (deploy/gate.py): both models on the same rows, the recorded
score only when production cannot be re-scored, and never a silent pass without a comparison."""

from __future__ import annotations

import pytest

from deploy import gate
from deploy.champion import Comparison
from deploy.params import GateParams

ACCURACY = GateParams(metric="accuracy", higher_is_better=True, max_regression=0.01)
RMSE = GateParams(metric="rmse", higher_is_better=False, max_regression=0.0)
SPLIT = {"rows": 114, "split_md5": "ab" * 16}


def baseline(metric: str, value: float, version: str = "3") -> gate.GateRecord:
    return gate.GateRecord(metric=metric, value=value, higher_is_better=True, modelVersion=version)


def both(params: GateParams, new: float, old: float) -> Comparison:
    return Comparison(
        **SPLIT,
        challenger={params.metric: new, "other": 0.5},
        champion={params.metric: old, "other": 0.4},
        champion_version="3",
    )


@pytest.mark.parametrize(
    ("params", "new", "old", "passed"),
    [
        (ACCURACY, 0.95, 0.95, True),
        (ACCURACY, 0.941, 0.95, True),  # within max_regression
        (ACCURACY, 0.93, 0.95, False),
        (RMSE, 10.0, 10.5, True),
        (RMSE, 10.6, 10.5, False),
    ],
)
def test_both_models_on_the_same_rows(params: GateParams, new: float, old: float, passed: bool):
    verdict = gate.judge(params, both(params, new, old), baseline(params.metric, 0.1))
    assert verdict.passed is passed
    assert verdict.summary.endswith("PASS" if passed else "FAIL")
    expected = f"production v3 scores {old:.4g}, this change scores {new:.4g} on the same 114 rows"
    assert expected in verdict.summary
    assert verdict.details == ["  other: production 0.4, this change 0.5"]  # shown, not gating


def test_the_first_production_model_passes_and_a_missing_metric_fails() -> None:
    alone = Comparison(**SPLIT, challenger={"accuracy": 0.5}, why_not="no registry")
    assert gate.judge(ACCURACY, alone, None).passed
    missing = gate.judge(ACCURACY, Comparison(**SPLIT, challenger={}), baseline("accuracy", 0.9))
    assert not missing.passed and "no 'accuracy' metric" in missing.summary


def test_without_a_champion_the_recorded_score_stands_in_and_says_so() -> None:
    alone = Comparison(**SPLIT, challenger={"accuracy": 0.85}, why_not="no registry here")
    verdict = gate.judge(ACCURACY, alone, baseline("accuracy", 0.9))
    assert not verdict.passed
    assert "production v3 not re-scored (no registry here); its recorded accuracy is 0.9" in (
        verdict.summary
    )


def test_a_champion_that_cannot_score_the_new_data_needs_an_override() -> None:
    blind = Comparison(
        **SPLIT, challenger={"accuracy": 0.99}, champion_version="3", why_not="needs column x"
    )
    refused = gate.judge(ACCURACY, blind, baseline("accuracy", 0.5))
    assert not refused.passed and "GATE_OVERRIDE" in refused.summary
    accepted = gate.judge(ACCURACY, blind, baseline("accuracy", 0.5), override="new schema")
    assert accepted.passed and "overridden (new schema)" in accepted.summary


def test_the_record_is_the_next_baseline(tmp_path) -> None:
    lineage = {"modelVersion": "4", "mlflowRunId": "abc", "gitCommit": "f00"}
    comparison = both(ACCURACY, 0.97, 0.95)
    verdict = gate.judge(ACCURACY, comparison, baseline("accuracy", 0.95))
    (tmp_path / gate.GATE_FILE).write_text(gate.record(ACCURACY, comparison, lineage, verdict))
    record = gate.read_record(tmp_path)
    assert (record.metric, record.value, record.modelVersion) == ("accuracy", 0.97, "4")
    assert record.comparison["champion"] == {"modelVersion": "3", "scores": comparison.champion}
    assert record.comparison["rows"] == 114 and record.verdict == verdict.summary


BAD_RECORDS = [
    "{not json",
    '{"value": 0.9}',
    '{"metric": "a", "value": "high", "higher_is_better": true}',
]


@pytest.mark.parametrize("text", BAD_RECORDS, ids=["json", "missing", "type"])
def test_a_corrupt_record_is_refused(tmp_path, text: str) -> None:
    (tmp_path / gate.GATE_FILE).write_text(text)
    with pytest.raises(gate.ProjectError, match="is not a record a deploy wrote"):
        gate.read_record(tmp_path)
