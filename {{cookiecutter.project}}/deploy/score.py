"""`make score INPUT=in.csv OUTPUT=out.csv [ENV=production]`: batch predictions for a CSV or
Parquet file of any size, with an environment's model (its MLflow alias) or, without ENV, the one
`make train` left here.

The scoring itself is the model package's (serving/batch.py: chunks, constant memory, row numbers
for bad values, no partial output), the same code the chart's CronJob runs in the model image;
this command picks the model and shows a progress bar.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError, run
from {{ cookiecutter.__package }}.serving import batch

from .deployed_model import resolve
from .settings import load_settings


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m deploy.score", description=__doc__)
    parser.add_argument("--input", default=os.environ.get("INPUT"))
    parser.add_argument("--output", default=os.environ.get("OUTPUT"))
    parser.add_argument("--env", default=os.environ.get("ENV") or None)
    args = parser.parse_args(argv)
    if not args.input or not args.output:
        raise ProjectError("score: give INPUT=<file.csv|.parquet> and OUTPUT=<file.csv|.parquet>")
    source, output = Path(args.input), Path(args.output)
    try:
        batch.check_destination(output)  # before the model loads from the registry
        deployed = resolve(load_settings(), args.env)
        start = time.perf_counter()
        total = batch.row_count(source, batch.kind_of(source)) if source.is_file() else None
        with tqdm(
            total=total, unit=" rows", unit_scale=True, file=sys.stderr, mininterval=1
        ) as bar:
            rows = batch.score(deployed, source, output, progress=bar.update)
    except batch.BatchError as error:
        raise ProjectError(str(error)) from None
    print(batch.summary(deployed, source, output, rows, time.perf_counter() - start))


if __name__ == "__main__":
    run(main)
