"""params.yaml as the toolkit reads it: the delivery blocks are checked like the model's, and the
metric defaults follow the task."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import write_workspace

from {{ cookiecutter.__package }}.config import load_params
from {{ cookiecutter.__package }}.errors import ProjectError

from deploy.params import load_pipeline_params


def rewrite(root: Path, **blocks: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for block, values in blocks.items():
        params[block] = values
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize(
    ("task", "metric", "higher"), [("classification", "accuracy", True), ("regression", "r2", True)]
)
def test_switching_task_switches_the_metric_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, metric: str, higher: bool
) -> None:
    write_workspace(tmp_path, task)
    rewrite(tmp_path, evaluate={"primary_metric": None}, gate={})
    monkeypatch.chdir(tmp_path)
    params = load_pipeline_params()
    assert params.evaluate.primary_metric == metric == load_params().evaluate.primary_metric
    assert (params.gate.metric, params.gate.higher_is_better) == (metric, higher)


def test_a_lower_is_better_gate_metric_sets_the_direction(tmp_path, monkeypatch) -> None:
    write_workspace(tmp_path, "regression")
    rewrite(tmp_path, gate={"metric": "rmse", "max_regression": 0.5})
    monkeypatch.chdir(tmp_path)
    gate = load_pipeline_params().gate
    assert (gate.metric, gate.higher_is_better, gate.max_regression) == ("rmse", False, 0.5)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ({"gate": {"metirc": "accuracy"}}, "gate.metirc: unknown key"),
        ({"gate": {"metric": "r2"}}, "gate.metric: 'r2' is not a classification metric"),
        ({"evaluate": {"primary_metric": "rmse"}}, "evaluate.primary_metric: 'rmse' is not"),
        ({"reproduce": {"tolerance": "0"}}, "reproduce.tolerance: Input should be a valid number"),
        ({"reproduce": {"tolerance": -1}}, "reproduce.tolerance"),
        ({"gaet": {}}, "gaet: unknown key"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_bad_params_name_the_key(tmp_path, monkeypatch, blocks: dict, message: str) -> None:
    write_workspace(tmp_path, "classification")
    rewrite(tmp_path, **blocks)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match="params.yaml: ") as error:
        load_pipeline_params()
    assert message in str(error.value) and "Value error" not in str(error.value)
