"""A request's inputs (serving/inputs.py) as model input: the DataFrame the pipeline was trained
on, and, where it is exact, a NumPy version of the fitted preprocessing that skips it.

On one record, scikit-learn's ColumnTransformer spends ~3 ms validating and indexing a pandas
DataFrame, twenty times what the estimator takes. For the preprocessing that model.py builds
(median imputer + scaler on numeric columns, most-frequent imputer + one-hot encoder on
categorical ones; for gradient boosting, numbers as they are and categories as ordinal codes)
the same transform is a few array operations. `compile_transform` returns it only when it
reproduces the pipeline's own output bit for bit on probe rows; for anything else (a pipeline
edited by hand, an option it does not know) it returns None and the service calls the pipeline
as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from .inputs import Inputs, Rows

Transform = Callable[[Inputs], np.ndarray]  # a request's inputs -> the matrix the estimator takes
PROBE_ROWS = 16


def to_frame(inputs: Inputs, columns: list[str]) -> pd.DataFrame:
    """The inputs as the DataFrame the pipeline was trained on: same columns, same order.

    Numeric columns are float64 (null -> NaN); categorical ones object with NaN for null, as in
    training (pandas 3 would otherwise infer its `str` dtype). An all-numeric frame is built as
    one float block: several times faster to build and for the pipeline to index.
    """
    if not inputs.categories:
        return pd.DataFrame(inputs.numbers.copy(), columns=columns)  # writable, as the pipeline's
    data = {}
    for j, i in enumerate(inputs.numeric_index):
        data[columns[i]] = inputs.numbers[:, j].copy()
    for values, i in zip(inputs.categories, inputs.categorical_index, strict=True):
        data[columns[i]] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data, columns=columns, copy=False)


def _imputes_nan(imputer: Any, strategy: str) -> bool:
    missing = imputer.missing_values
    return (
        type(imputer) is SimpleImputer
        and imputer.strategy == strategy
        and not imputer.add_indicator
        and isinstance(missing, float)
        and np.isnan(missing)
    )


def _numeric(steps: Pipeline, index: list[int], numeric: list[bool]) -> Transform | None:
    imputer, scaler = (step for _, step in steps.steps)
    if not (
        _imputes_nan(imputer, "median")
        and not np.isnan(imputer.statistics_).any()  # else the imputer drops that column
        and type(scaler) is StandardScaler
    ):
        return None
    fill = imputer.statistics_
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    positions = [_kind_index(numeric, True).index(i) for i in index]  # in Inputs.numbers

    def transform(inputs: Inputs) -> np.ndarray:
        values = inputs.numbers[:, positions]  # a copy: the shared matrix stays as it is
        np.copyto(values, fill, where=np.isnan(values))
        # The scaler's own operations, in its order: the results are identical, not just close.
        if mean is not None:
            values -= mean
        if scale is not None:
            values /= scale
        return values

    return transform


def _kind_index(numeric: list[bool], kind: bool) -> list[int]:
    return [i for i, is_numeric in enumerate(numeric) if is_numeric is kind]


def _categorical(steps: Pipeline, index: list[int], numeric: list[bool]) -> Transform | None:
    imputer, encoder = (step for _, step in steps.steps)
    if not (
        _imputes_nan(imputer, "most_frequent")
        and type(encoder) is OneHotEncoder
        and encoder.drop is None
        and encoder.handle_unknown == "ignore"
        and not getattr(encoder, "_infrequent_enabled", False)
        and not encoder.sparse_output
    ):
        return None
    fills = list(imputer.statistics_)
    lookups = [{level: n for n, level in enumerate(levels)} for levels in encoder.categories_]
    width = sum(len(levels) for levels in encoder.categories_)
    offsets = np.cumsum([0] + [len(levels) for levels in encoder.categories_])[:-1]
    positions = [_kind_index(numeric, False).index(i) for i in index]  # in Inputs.categories

    def transform(inputs: Inputs) -> np.ndarray:
        encoded = np.zeros((len(inputs), width), dtype=encoder.dtype)
        for j, position in enumerate(positions):
            # Null is the imputed level; an unknown level (-1) encodes as all zeros.
            get, imputed = lookups[j].get, lookups[j].get(fills[j], -1)
            values = inputs.categories[position]
            codes = np.fromiter(
                (imputed if v is None else get(v, -1) for v in values), np.intp, len(values)
            )
            known = np.flatnonzero(codes >= 0)
            encoded[known, offsets[j] + codes[known]] = 1
        return encoded

    return transform


def _passthrough(index: list[int], numeric: list[bool]) -> Transform | None:
    if not all(numeric[i] for i in index):
        return None
    positions = [_kind_index(numeric, True).index(i) for i in index]  # in Inputs.numbers

    def transform(inputs: Inputs) -> np.ndarray:
        return inputs.numbers[:, positions]  # a copy, as for the scaled columns

    return transform


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _ordinal(encoder: Any, index: list[int], numeric: list[bool]) -> Transform | None:
    if not (
        type(encoder) is OrdinalEncoder
        and encoder.handle_unknown == "use_encoded_value"
        and _is_nan(encoder.unknown_value)
        and _is_nan(encoder.encoded_missing_value)
        and not getattr(encoder, "_infrequent_enabled", False)
        and not any(numeric[i] for i in index)
    ):
        return None
    # A level's code is its position among the fitted levels; null and unknown levels are NaN.
    lookups = [{level: float(n) for n, level in enumerate(found)} for found in encoder.categories_]
    positions = [_kind_index(numeric, False).index(i) for i in index]  # in Inputs.categories

    def transform(inputs: Inputs) -> np.ndarray:
        codes = np.empty((len(inputs), len(positions)), dtype=encoder.dtype)
        for j, position in enumerate(positions):
            get, values = lookups[j].get, inputs.categories[position]
            codes[:, j] = np.fromiter((get(v, np.nan) for v in values), np.float64, len(values))
        return codes

    return transform


def _block(steps: Any, index: list[int], numeric: list[bool]) -> Transform | None:
    """One branch of the ColumnTransformer as NumPy, or None for one this module does not know."""
    # A fitted "passthrough" branch is an identity FunctionTransformer.
    if type(steps) is FunctionTransformer and steps.func is None:
        return _passthrough(index, numeric)
    if isinstance(steps, OrdinalEncoder):
        return _ordinal(steps, index, numeric)
    if not isinstance(steps, Pipeline) or len(steps.steps) != 2:
        return None
    build = _numeric if isinstance(steps.steps[1][1], StandardScaler) else _categorical
    return build(steps, index, numeric)


def _blocks(
    preprocess: ColumnTransformer, columns: list[str], numeric: list[bool]
) -> list[Transform] | None:
    blocks: list[Transform] = []
    for name, steps, selected in preprocess.transformers_:
        if name == "remainder":
            if steps != "drop":
                return None
            continue
        if steps == "drop" or len(selected) == 0:
            continue
        block = _block(steps, [columns.index(column) for column in selected], numeric)
        if block is None:
            return None
        blocks.append(block)
    return blocks


def probe_rows(preprocess: ColumnTransformer, columns: list[str], numeric: list[bool]) -> Rows:
    """Rows that exercise every branch: numbers of many magnitudes, every known level, nulls."""
    rng = np.random.default_rng(0)
    levels: dict[str, list[Any]] = {}
    for _, steps, selected in preprocess.transformers_:
        encoder = steps[-1] if isinstance(steps, Pipeline) else steps
        # A branch with no columns was never fitted (all-numeric data: no categories).
        if len(selected) and isinstance(encoder, OneHotEncoder | OrdinalEncoder):
            for column, found in zip(selected, encoder.categories_, strict=True):
                levels[column] = [level for level in found if not _is_nan(level)]  # null: None
    rows = []
    for r in range(PROBE_ROWS):
        row: list[Any] = []
        for column, is_numeric in zip(columns, numeric, strict=True):
            if r % 5 == 4:
                row.append(None)
            elif is_numeric:
                row.append(float(rng.normal(0, 10.0 ** rng.integers(-2, 4))))
            else:
                choices = levels.get(column) or ["?"]
                row.append(choices[r % len(choices)])
        rows.append(row)
    return rows


def compile_transform(
    pipeline: Pipeline, columns: list[str], numeric: list[bool]
) -> Transform | None:
    """The pipeline's preprocessing as NumPy, or None unless it equals the pipeline exactly."""
    preprocess = pipeline.named_steps.get("preprocess")
    if not isinstance(preprocess, ColumnTransformer) or len(pipeline.steps) != 2:
        return None
    try:
        blocks = _blocks(preprocess, columns, numeric)
        if not blocks:
            return None

        def transform(inputs: Inputs) -> np.ndarray:
            return np.hstack([block(inputs) for block in blocks])

        probe = Inputs.from_rows(probe_rows(preprocess, columns, numeric), numeric)
        expected = preprocess.transform(to_frame(probe, columns))
        got = transform(probe)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None  # a structure this module does not know: the pipeline itself serves
    if got.dtype != expected.dtype or not np.array_equal(got, expected, equal_nan=True):
        return None
    return transform


def model_input(
    pipeline: Pipeline, columns: list[str], numeric: list[bool]
) -> tuple[Any, Callable[[Inputs], Any]]:
    """What to call and what to give it: the estimator on the NumPy preprocessing where that is
    proven exact, else the whole pipeline on the DataFrame."""
    transform = compile_transform(pipeline, columns, numeric)
    if transform:
        return pipeline[-1], transform

    def frame(inputs: Inputs) -> pd.DataFrame:
        return to_frame(inputs, columns)

    return pipeline, frame
