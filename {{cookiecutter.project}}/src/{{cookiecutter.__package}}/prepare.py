"""DVC stage `prepare`: check the raw CSV, split it, and write the feature schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .atomic import atomic_dir
from .config import DataParams, load_params
from .data import infer_schema, read_raw, write_prepared, write_schema
from .errors import ProjectError, run
from .paths import PREPARED, SCHEMA_FILE, TEST_FILE, TRAIN_FILE


def split_rows(frame: pd.DataFrame, params: DataParams) -> tuple[np.ndarray, np.ndarray]:
    """The train and test rows' positions, each part in the raw order (stable input for the
    estimators). A classification split is stratified on the labels' codes in sorted order: the
    same split as on the labels themselves, without sorting a million strings to find them."""
    stratify = None
    if params.task == "classification":
        stratify = pd.factorize(frame[params.target], sort=True)[0]
    try:
        train, test = train_test_split(
            np.arange(len(frame)),
            test_size=params.test_size,
            random_state=params.seed,
            stratify=stratify,
        )
    except ValueError as error:
        raise ProjectError(f"{params.path}: cannot split {len(frame)} rows: {error}") from None
    return np.sort(train), np.sort(test)


def main() -> None:
    params = load_params().data
    frame = read_raw(params)
    schema = infer_schema(frame, params)
    train, test = split_rows(frame, params)
    with atomic_dir(PREPARED) as staging:
        write_prepared(frame.take(train), staging / TRAIN_FILE.name)
        write_prepared(frame.take(test), staging / TEST_FILE.name)
        write_schema(schema, staging / SCHEMA_FILE.name)
    features = len(schema["features"])
    print(f"prepare: {len(train)} train rows, {len(test)} test rows, {features} features")


if __name__ == "__main__":
    run(main)
