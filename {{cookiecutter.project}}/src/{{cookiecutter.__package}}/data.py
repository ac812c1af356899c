"""Read and check the raw CSV, and describe its columns: the schema the API is built from."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import DataParams
from .errors import ProjectError
from .paths import SCHEMA_FILE

# A column with at most this many distinct strings is categorical; other strings are refused.
MAX_CATEGORIES = 100


def read_raw(params: DataParams) -> pd.DataFrame:
    """The raw data with a stable row and column order, checked against params.yaml."""
    path = Path(params.path)
    if not path.is_file():
        raise ProjectError(f"{path}: not found (is it pulled? try `dvc pull`)")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ProjectError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ProjectError(f"{path}: not a readable CSV: {error}") from None
    if frame.empty:
        raise ProjectError(f"{path}: has a header but no rows")
    missing = [c for c in [params.target, *params.drop] if c not in frame.columns]
    if missing:
        raise ProjectError(
            f"{path}: column {missing[0]!r} (from params.yaml data) is not in the CSV; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    frame = frame.drop(columns=params.drop)
    if frame[params.target].isna().any():
        raise ProjectError(f"{path}: target column {params.target!r} has missing values")
    if frame.shape[1] < 2:
        raise ProjectError(f"{path}: no feature columns besides the target {params.target!r}")
    if params.task == "classification" and frame[params.target].nunique() < 2:
        raise ProjectError(
            f"{path}: target {params.target!r} has a single class "
            f"({frame[params.target].iloc[0]!r}); classification needs at least two"
        )
    if params.task == "regression" and not pd.api.types.is_numeric_dtype(frame[params.target]):
        raise ProjectError(f"{path}: target {params.target!r} must be numeric for regression")
    return frame


def infer_schema(frame: pd.DataFrame, params: DataParams) -> dict:
    """Feature names, kinds and categorical levels, in column order."""
    features = []
    for name in frame.columns:
        if name == params.target:
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            levels = sorted(column.dropna().astype(str).unique())
            if len(levels) > MAX_CATEGORIES:
                raise ProjectError(
                    f"{params.path}: column {name!r} has {len(levels)} distinct text values; "
                    f"a categorical feature may have at most {MAX_CATEGORIES} "
                    "(list it in params.yaml data.drop)"
                )
            features.append({"name": str(name), "kind": "categorical", "categories": levels})
        else:
            features.append({"name": str(name), "kind": "numeric"})
    schema = {"target": params.target, "task": params.task, "features": features}
    if params.task == "classification":
        schema["classes"] = sorted(frame[params.target].unique().tolist(), key=str)
    return schema


def write_schema(schema: dict, path: Path = SCHEMA_FILE) -> None:
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def read_schema(path: Path = SCHEMA_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def features_and_target(frame: pd.DataFrame, schema: dict) -> tuple[pd.DataFrame, pd.Series]:
    """Split a prepared frame into typed features (schema order) and the target."""
    kinds = {f["name"]: object if f["kind"] == "categorical" else float for f in schema["features"]}
    return frame[list(kinds)].astype(kinds), frame[schema["target"]]


def read_prepared(path: Path) -> pd.DataFrame:
    """Read a prepared split back with the raw values intact (categories stay text)."""
    schema = read_schema()
    dtypes = {f["name"]: str for f in schema["features"] if f["kind"] == "categorical"}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=True)
