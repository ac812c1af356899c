"""Read and check the raw CSV, and describe its columns: the schema the API is built from.

The raw CSV is read once, typed: pandas infers the column types on a sample, then pyarrow's
multithreaded reader parses the whole file with those types (several times faster than pandas,
and a text value in a numeric column fails instead of turning the column into text). The
prepared splits are Parquet: written and read back at the speed of memory, values intact.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from .config import DataParams
from .errors import ProjectError
from .paths import SCHEMA_FILE

# A column with at most this many distinct strings is categorical; other strings are refused.
MAX_CATEGORIES = 100
# Rows pandas reads to infer the column types of the full read.
SAMPLE_ROWS = 10_000


def column_types(path: Path, target: str) -> dict[str, pa.DataType]:
    """Arrow types from a sample: numbers as float64 (a later 1.5 in a column of integers is
    fine), the target's integers kept (class labels), booleans, and text for the rest."""
    sample = pd.read_csv(path, nrows=SAMPLE_ROWS)
    types = {}
    for name, dtype in sample.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            types[str(name)] = pa.bool_()
        elif pd.api.types.is_integer_dtype(dtype) and name == target:
            types[str(name)] = pa.int64()
        elif pd.api.types.is_numeric_dtype(dtype):
            types[str(name)] = pa.float64()
        else:
            types[str(name)] = pa.string()
    return types


def locate_bad_row(path: Path, types: dict[str, pa.DataType]) -> str:
    """Where the typed read failed, as `line N, column C: why` (a second, slower pass that only
    a failed read pays for: pyarrow's parallel parser does not know line numbers)."""
    numeric = [pa.types.is_floating(t) or pa.types.is_integer(t) for t in types.values()]
    names = list(types)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        start = 2
        for row in reader:
            if len(row) != len(names):
                quoted = reader.line_num > start or '"' in "".join(row)
                why = " (a quote opened here is never closed)" if quoted else ""
                return f"line {start}: {len(row)} fields where the header has {len(names)}{why}"
            for name, is_numeric, value in zip(names, numeric, row, strict=True):
                if is_numeric and value.strip() and value.strip() not in NULLS:
                    try:
                        float(value)
                    except ValueError:
                        return f"line {start}, column {name!r}: {value!r} is not a number"
            start = reader.line_num + 1
    return "unreadable"


# What pyarrow reads as null (its defaults), as pandas does.
NULLS = frozenset(pa_csv.ConvertOptions().null_values)


def read_csv_typed(path: Path, target: str) -> pd.DataFrame:
    types = column_types(path, target)
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    try:
        table = pa_csv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as error:
        where = locate_bad_row(path, types)
        if where == "unreadable":
            where = str(error).splitlines()[0]
        raise ProjectError(f"{path}: not a readable CSV: {where}") from None
    return table.to_pandas()


def read_raw(params: DataParams) -> pd.DataFrame:
    """The raw data with a stable row and column order, checked against params.yaml."""
    path = Path(params.path)
    if not path.is_file():
        raise ProjectError(f"{path}: not found (is it pulled? try `dvc pull`)")
    try:
        frame = read_csv_typed(path, params.target)
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


def write_prepared(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def read_prepared(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a prepared split back (every column, or only `columns`) with the raw values intact
    (categories stay text)."""
    return pd.read_parquet(path, columns=columns)
