"""Batch scoring: a CSV or Parquet file of any size scored in chunks, in constant memory.

Each output row is the prediction (and class probabilities) of the input row in the same
position, with the model version and MLflow run id. A missing column stops before any scoring;
values of the wrong type are collected over the whole file and reported by row number (1 = the
first data row). The output is written beside its destination and renamed into place at the end,
so a failure leaves no file behind.

Two callers: `make score` (deploy/score.py, with an environment's model from the registry) and
the chart's CronJob, which runs this module in the model image on the model its Bento ships:

    python -m <package>.serving.batch --input in.csv --output out.csv [--bento DIR]

The image holds no pyarrow, so there it scores CSV files only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK_ROWS = int(os.environ.get("SCORE_CHUNK_ROWS", "100000"))
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
SHOWN_ROWS = 10  # row numbers listed in an error; the count says how many more


class BatchError(Exception):
    """Bad input for a batch score; the message names the file and the cause."""


@dataclass(frozen=True)
class ScoringModel:
    model: Any  # the scikit-learn pipeline
    schema: dict[str, Any]
    model_version: str
    mlflow_run_id: str
    source: str  # for messages: "production (version 3)", "models/model.pkl"


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BatchError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    if suffix == ".parquet" and not HAS_PYARROW:
        raise BatchError(f"{path}: Parquet needs pyarrow, which is not installed here; use .csv")
    return suffix[1:]


def columns_of(path: Path, kind: str) -> list[str]:
    if not path.is_file():
        raise BatchError(f"{path}: no such file")
    if not path.stat().st_size:
        raise BatchError(f"{path}: the file is empty (not even a header)")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        return list(pd.read_csv(path, nrows=0).columns)
    except (ValueError, OSError) as error:  # pandas' EmptyDataError and pyarrow's are ValueErrors
        raise BatchError(f"{path}: cannot read it as {kind}: {error}") from None


def row_count(path: Path, kind: str) -> int | None:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None  # counting a CSV's rows means reading it twice


def chunks(path: Path, kind: str, schema: dict[str, Any]) -> Iterator[pd.DataFrame]:
    names = [feature["name"] for feature in schema["features"]]
    if kind == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS, columns=names):
            yield batch.to_pandas()
        return
    text = {f["name"]: str for f in schema["features"] if f["kind"] == "categorical"}
    yield from pd.read_csv(path, usecols=names, dtype=text, chunksize=CHUNK_ROWS)


def typed(frame: pd.DataFrame, schema: dict[str, Any], first_row: int) -> tuple[pd.DataFrame, list]:
    """The chunk with the training dtypes, and (row, column, value) of values that are not."""
    bad: list[tuple[int, str, Any]] = []
    columns = {}
    for feature in schema["features"]:
        name, values = feature["name"], frame[feature["name"]]
        if feature["kind"] == "categorical":
            columns[name] = values.astype(object).where(values.notna(), np.nan)
            continue
        if values.dtype.kind in "fiub":
            columns[name] = values.astype(np.float64)
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        for position in np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy()):
            bad.append((first_row + int(position), name, values.iloc[position]))
        columns[name] = numbers.astype(np.float64)
    return pd.DataFrame(columns), bad


def predictions(scoring: ScoringModel, features: pd.DataFrame) -> pd.DataFrame:
    model, frame = scoring.model, pd.DataFrame(index=features.index)
    if scoring.schema["task"] == "classification":
        probabilities = model.predict_proba(features)
        frame["prediction"] = model.classes_[probabilities.argmax(axis=1)]
        for i, label in enumerate(model.classes_):
            frame[f"proba_{label}"] = probabilities[:, i]
    else:
        frame["prediction"] = model.predict(features)
    frame["model_version"] = scoring.model_version
    frame["mlflow_run_id"] = scoring.mlflow_run_id
    return frame


class Writer:
    """Appends chunks to a hidden file beside the output; `commit` renames it into place.

    Where pyarrow is installed (the project's venv, not the model image) both formats go through
    its writers: at 1M rows its CSV writer is ten times faster than pandas'. The values are the
    same either way (floats round-trip), not always the bytes: pyarrow quotes text, writes 1.0 as 1.
    """

    def __init__(self, output: Path, kind: str) -> None:
        self.output, self.kind = output, kind
        self.partial = output.with_name(f".{output.name}.partial")
        self.arrow: Any = None  # pyarrow's CSV or Parquet writer, opened on the first chunk
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if not HAS_PYARROW:  # CSV: kind_of refuses Parquet without pyarrow
            frame.to_csv(
                self.partial, mode="a" if self.rows else "w", header=not self.rows, index=False
            )
        else:
            import pyarrow as pa

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.arrow is None:
                self.arrow = self.open(table.schema)
            self.arrow.write_table(table)
        self.rows += len(frame)

    def open(self, schema: Any) -> Any:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self.partial, schema)
        import pyarrow.csv as pa_csv

        return pa_csv.CSVWriter(self.partial, schema)

    def close(self) -> None:
        if self.arrow is not None:
            self.arrow.close()

    def commit(self) -> None:
        self.close()
        os.replace(self.partial, self.output)

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)


def check_destination(output: Path) -> str:
    kind = kind_of(output)
    if not output.parent.is_dir():
        raise BatchError(f"{output}: directory {output.parent} does not exist")
    return kind


def score(
    scoring: ScoringModel,
    source: Path,
    output: Path,
    progress: Callable[[int], object] = lambda rows: None,
) -> int:
    """Score `source` into `output`; `progress` is told each chunk's row count. Returns the rows."""
    kind, out_kind = kind_of(source), check_destination(output)
    present = columns_of(source, kind)
    missing = [f["name"] for f in scoring.schema["features"] if f["name"] not in present]
    if missing:
        raise BatchError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))} that model "
            f"{scoring.source} needs"
        )
    writer, bad, done = Writer(output, out_kind), [], 0
    try:
        for frame in chunks(source, kind, scoring.schema):
            if frame.empty:  # a CSV with a header only reads as one empty chunk
                continue
            features, found = typed(frame, scoring.schema, done + 1)
            bad += found
            if not bad:  # after the first bad value, only look for more
                writer.write(predictions(scoring, features))
            done += len(frame)
            progress(len(frame))
        if bad:
            rows = sorted({row for row, _, _ in bad})
            row, column, value = bad[0]
            more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
            raise BatchError(
                f"{source}: {len(rows)} row(s) with a non-numeric value in a numeric column: "
                f"rows {', '.join(map(str, rows[:SHOWN_ROWS]))}{more} "
                f"(first: row {row}, column {column!r}, value {str(value)[:40]!r})"
            )
        if not done:
            raise BatchError(f"{source}: no data rows to score")
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return done


def summary(scoring: ScoringModel, source: Path, output: Path, rows: int, seconds: float) -> str:
    return (
        f"scored {rows} rows of {source} with {scoring.source}, run {scoring.mlflow_run_id}: "
        f"{output} ({seconds:.1f} s, {rows / max(seconds, 1e-9):,.0f} rows/s)"
    )


def shipped_model(bento: Path) -> ScoringModel:
    """The model the Bento at `bento` ships (in the image, the one it serves)."""
    import bentoml

    from . import api

    try:
        [model] = bentoml.load(str(bento)).models  # imports the service with the Bento's store
    except (bentoml.exceptions.BentoMLException, ValueError) as error:
        raise BatchError(f"{bento}: no Bento with one model here: {error}") from None
    lineage = api.lineage(model)
    return ScoringModel(
        api.load_model(model),
        api.load_schema(model),
        lineage.model_version,
        lineage.mlflow_run_id,
        f"{lineage.model_name} version {lineage.model_version}",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--bento", default=Path(), type=Path, help="default: the current directory")
    args = parser.parse_args(argv)
    try:
        check_destination(args.output)  # before the model loads: fail in a second, not in five
        scoring = shipped_model(args.bento)
        start = time.perf_counter()
        rows = score(scoring, args.input, args.output)
    except BatchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(summary(scoring, args.input, args.output, rows, time.perf_counter() - start))


if __name__ == "__main__":
    main()
