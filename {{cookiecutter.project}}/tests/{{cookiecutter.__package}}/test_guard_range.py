"""Finite but extreme floats: refused with the field they are in, never an overflow (a 500)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_frame
from test_fastpath import COLUMNS, NUMERIC, schema

from {{ cookiecutter.__package }}.config import TrainParams
from {{ cookiecutter.__package }}.data import features_and_target
from {{ cookiecutter.__package }}.model import ESTIMATORS, build_pipeline
from {{ cookiecutter.__package }}.serving.fastpath import to_frame
from {{ cookiecutter.__package }}.serving.guard import (
    COLUMN_FIELD,
    MAX_SCALED,
    check_range,
    input_limits,
)
from {{ cookiecutter.__package }}.serving.inputs import Inputs

MODELS = [(task, model) for task, models in ESTIMATORS.items() for model in models]
# Gradient boosting takes the numbers unscaled (model.py): nothing of theirs overflows.
SCALED = [(task, model) for task, model in MODELS if model != "hist_gradient_boosting"]


def fitted(task: str, model: str):
    """A pipeline whose "income k$" has a spread below 1 (as many real columns do): dividing
    1e308 by its scale overflows."""
    spec = schema(task)
    frame = tiny_frame(task)
    frame["income k$"] = frame["income k$"] / 1000
    features, target = features_and_target(frame, spec)
    return build_pipeline(spec, TrainParams(model=model)).fit(features, target)


@pytest.mark.parametrize(("task", "model"), SCALED)
def test_extreme_floats_overflow_the_pipeline_and_are_refused_by_field(task, model) -> None:
    pipeline = fitted(task, model)
    rows = [[40.0, 50.0, "paris"], [40.0, 1.7e308, "lyon"]]
    # The scaler overflows to inf; most estimators then raise "Input X contains infinity" (500).
    assert np.isinf(pipeline[0].transform(to_frame(Inputs.from_rows(rows, NUMERIC), COLUMNS))).any()
    refused = check_range(Inputs.from_rows(rows, NUMERIC), COLUMNS, input_limits(pipeline, COLUMNS))
    assert refused is not None and refused.startswith("records[1].income k$: 1.7e+308 ")


@pytest.mark.parametrize(("task", "model"), MODELS)
def test_values_up_to_the_limit_predict_finite_numbers(task, model) -> None:
    pipeline = fitted(task, model)
    limits = input_limits(pipeline, COLUMNS)
    assert set(limits) == ({0, 1} if (task, model) in SCALED else set())
    bound = [limits.get(column, MAX_SCALED) for column in (0, 1)]
    rows = [[bound[0], -bound[1], None], [None, None, "nice"]]
    assert check_range(Inputs.from_rows(rows, NUMERIC), COLUMNS, limits) is None
    frame = to_frame(Inputs.from_rows(rows, NUMERIC), COLUMNS)
    predicted = (
        pipeline.predict_proba(frame) if task == "classification" else pipeline.predict(frame)
    )
    assert np.isfinite(predicted).all()


def test_a_pipeline_without_a_scaler_gets_the_plain_limit() -> None:
    inputs = Inputs.from_rows([[2 * MAX_SCALED, 1.0, "paris"]], NUMERIC)
    assert check_range(inputs, COLUMNS, {}).startswith("records[0].age: 2e+30 ")
    columnar = check_range(inputs, COLUMNS, {}, COLUMN_FIELD)
    assert columnar.startswith("columns.age[0]: 2e+30 ")
