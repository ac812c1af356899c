"""`make score INPUT=in.csv OUTPUT=out.csv [ENV=production]`: batch predictions for a CSV or
Parquet file of any size, with an environment's model (its MLflow alias) or, without ENV, the one
`make train` left here.

The file is read and scored in chunks (constant memory); each output row is the prediction (and
class probabilities) of the input row in the same position, with the model version and MLflow run
id. A missing column stops before any scoring; values of the wrong type are collected over the
whole file and reported by row number (1 = the first data row). The output is written beside its
destination and renamed into place at the end, so a failure leaves no file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.__package }}.errors import ProjectError, run

from .deployed_model import DeployedModel, resolve
from .settings import load_settings

CHUNK_ROWS = int(os.environ.get("SCORE_CHUNK_ROWS", "100000"))
SHOWN_ROWS = 10  # row numbers listed in an error; the count says how many more


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ProjectError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    return suffix[1:]


def columns_of(path: Path, kind: str) -> list[str]:
    if not path.is_file():
        raise ProjectError(f"{path}: no such file")
    if not path.stat().st_size:
        raise ProjectError(f"{path}: the file is empty (not even a header)")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        return list(pd.read_csv(path, nrows=0).columns)
    except (ValueError, OSError) as error:  # pandas' EmptyDataError and pyarrow's are ValueErrors
        raise ProjectError(f"{path}: cannot read it as {kind}: {error}") from None


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


def predictions(deployed: DeployedModel, features: pd.DataFrame) -> pd.DataFrame:
    model, frame = deployed.model, pd.DataFrame(index=features.index)
    if deployed.schema["task"] == "classification":
        probabilities = model.predict_proba(features)
        frame["prediction"] = model.classes_[probabilities.argmax(axis=1)]
        for i, label in enumerate(model.classes_):
            frame[f"proba_{label}"] = probabilities[:, i]
    else:
        frame["prediction"] = model.predict(features)
    frame["model_version"] = deployed.model_version
    frame["mlflow_run_id"] = deployed.mlflow_run_id
    return frame


class Writer:
    """Appends chunks to a hidden file beside the output; `commit` renames it into place."""

    def __init__(self, output: Path, kind: str) -> None:
        self.output, self.kind = output, kind
        self.partial = output.with_name(f".{output.name}.partial")
        self.parquet: Any = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(
                self.partial, mode="a" if self.rows else "w", header=not self.rows, index=False
            )
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.partial, table.schema)
            self.parquet.write_table(table)
        self.rows += len(frame)

    def commit(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        os.replace(self.partial, self.output)

    def discard(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        self.partial.unlink(missing_ok=True)


@contextmanager
def progress(total: int | None) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, mininterval=1) as bar:
        yield bar


def row_count(path: Path, kind: str) -> int | None:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None  # counting a CSV's rows means reading it twice


def score(deployed: DeployedModel, source: Path, output: Path) -> int:
    kind, out_kind = kind_of(source), kind_of(output)
    missing = [
        f["name"] for f in deployed.schema["features"] if f["name"] not in columns_of(source, kind)
    ]
    if missing:
        raise ProjectError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))} that model "
            f"{deployed.source} needs"
        )
    writer, bad, done = Writer(output, out_kind), [], 0
    try:
        with progress(row_count(source, kind)) as bar:
            for frame in chunks(source, kind, deployed.schema):
                if frame.empty:  # a CSV with a header only reads as one empty chunk
                    continue
                features, found = typed(frame, deployed.schema, done + 1)
                bad += found
                if not bad:  # after the first bad value, only look for more
                    writer.write(predictions(deployed, features))
                done += len(frame)
                bar.update(len(frame))
        if bad:
            rows = sorted({row for row, _, _ in bad})
            row, column, value = bad[0]
            more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
            raise ProjectError(
                f"{source}: {len(rows)} row(s) with a non-numeric value in a numeric column: "
                f"rows {', '.join(map(str, rows[:SHOWN_ROWS]))}{more} "
                f"(first: row {row}, column {column!r}, value {str(value)[:40]!r})"
            )
        if not done:
            raise ProjectError(f"{source}: no data rows to score")
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.score", description=__doc__)
    parser.add_argument("--input", default=os.environ.get("INPUT"))
    parser.add_argument("--output", default=os.environ.get("OUTPUT"))
    parser.add_argument("--env", default=os.environ.get("ENV") or None)
    args = parser.parse_args(argv)
    if not args.input or not args.output:
        raise ProjectError("score: give INPUT=<file.csv|.parquet> and OUTPUT=<file.csv|.parquet>")
    source, output = Path(args.input), Path(args.output)
    kind_of(output)
    if not output.parent.is_dir():
        raise ProjectError(f"{output}: directory {output.parent} does not exist")
    deployed = resolve(load_settings(), args.env)
    start = time.perf_counter()
    rows = score(deployed, source, output)
    seconds = time.perf_counter() - start
    print(
        f"scored {rows} rows of {source} with {deployed.source}, run "
        f"{deployed.mlflow_run_id}: {output} "
        f"({seconds:.1f} s, {rows / max(seconds, 1e-9):,.0f} rows/s)"
    )


if __name__ == "__main__":
    run(main)
