"""The NumPy preprocessing the service uses: exactly the pipeline's, or not used at all."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import tiny_frame
from sklearn.preprocessing import MinMaxScaler

from {{ cookiecutter.__package }}.config import TrainParams
from {{ cookiecutter.__package }}.data import features_and_target
from {{ cookiecutter.__package }}.model import ESTIMATORS, build_pipeline
from {{ cookiecutter.__package }}.serving.fastpath import compile_transform, probe_rows, to_frame
from {{ cookiecutter.__package }}.serving.inputs import Inputs

COLUMNS = ["age", "income k$", "city"]
NUMERIC = [True, True, False]


def schema(task: str) -> dict:
    features = [{"name": "age", "kind": "numeric"}, {"name": "income k$", "kind": "numeric"}]
    features.append(
        {"name": "city", "kind": "categorical", "categories": ["lyon", "nice", "paris"]}
    )
    return {"target": "label", "task": task, "features": features}


def fitted(task: str, model: str):
    spec = schema(task)
    features, target = features_and_target(tiny_frame(task), spec)
    return build_pipeline(spec, TrainParams(model=model)).fit(features, target)


def rows() -> list[list]:
    """Unseen rows: other numbers, every level, an unknown level, and nulls everywhere."""
    rng = np.random.default_rng(7)
    cities = ["paris", "lyon", "nice", "marseille", None]
    return [
        [
            None if i % 6 == 5 else float(rng.integers(18, 90)),
            float(rng.normal(50, 15)),
            cities[i % 5],
        ]
        for i in range(30)
    ]


@pytest.mark.parametrize(
    ("task", "model"), [(task, model) for task, models in ESTIMATORS.items() for model in models]
)
def test_fast_path_equals_the_pipeline(task: str, model: str) -> None:
    pipeline = fitted(task, model)
    transform = compile_transform(pipeline, COLUMNS, NUMERIC)
    assert transform is not None, "the pipeline model.py builds must get the fast path"
    inputs = Inputs.from_rows(rows(), NUMERIC)
    frame = to_frame(inputs, COLUMNS)
    # Gradient boosting's codes keep null and unknown levels as NaN.
    assert np.array_equal(transform(inputs), pipeline[0].transform(frame), equal_nan=True)
    estimator = pipeline[-1]
    assert np.array_equal(estimator.predict(transform(inputs)), pipeline.predict(frame))
    if task == "classification":
        fast = estimator.predict_proba(transform(inputs))
        assert np.array_equal(fast, pipeline.predict_proba(frame))


def test_all_numeric_data_gets_the_fast_path() -> None:
    """No categorical column: the categorical branch is empty and was never fitted."""
    spec = schema("classification")
    spec["features"] = spec["features"][:2]
    features, target = features_and_target(tiny_frame("classification"), spec)
    pipeline = build_pipeline(spec, TrainParams(model="logistic_regression")).fit(features, target)
    transform = compile_transform(pipeline, COLUMNS[:2], NUMERIC[:2])
    assert transform is not None
    numbers = [row[:2] for row in rows()]
    inputs = Inputs.from_rows(numbers, NUMERIC[:2])
    assert np.array_equal(transform(inputs), pipeline[0].transform(to_frame(inputs, COLUMNS[:2])))


def test_an_unknown_pipeline_gets_no_fast_path() -> None:
    pipeline = fitted("classification", "logistic_regression")
    numeric = pipeline[0].transformers_[0][1]
    imputed = numeric[:1].transform(tiny_frame("classification")[COLUMNS[:2]])
    numeric.steps[1] = ("scaler", MinMaxScaler().fit(imputed))  # a hand-edited pipeline
    assert compile_transform(pipeline, COLUMNS, NUMERIC) is None


def test_probe_rows_cover_levels_and_nulls() -> None:
    probes = probe_rows(fitted("classification", "logistic_regression")[0], COLUMNS, NUMERIC)
    assert {row[2] for row in probes} == {"lyon", "nice", "paris", None}
    assert any(row[0] is None for row in probes) and len({row[1] for row in probes}) > 10


def test_frame_has_training_columns_and_dtypes() -> None:
    inputs = Inputs.from_rows([[42.0, 51.5, "paris"], [None, None, None]], NUMERIC)
    frame = to_frame(inputs, COLUMNS)
    assert list(frame.columns) == COLUMNS
    assert [str(dtype) for dtype in frame.dtypes] == ["float64", "float64", "object"]
    assert frame["city"].tolist()[0] == "paris" and math.isnan(frame["city"].tolist()[1])
    assert math.isnan(frame["age"].tolist()[1])


def test_all_numeric_frame_is_one_float_block() -> None:
    frame = to_frame(Inputs.from_rows([[1.0, None, 2.0]], [True] * 3), ["a", "b", "c"])
    assert [str(dtype) for dtype in frame.dtypes] == ["float64"] * 3
    assert math.isnan(frame.iloc[0, 1]) and frame.iloc[0, 2] == 2.0
