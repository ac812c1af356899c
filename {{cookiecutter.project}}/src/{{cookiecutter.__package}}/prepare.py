"""DVC stage `prepare`: check the raw CSV, split it, and write the feature schema."""

from __future__ import annotations

from sklearn.model_selection import train_test_split

from .atomic import atomic_dir
from .config import load_params
from .data import infer_schema, read_raw, write_prepared, write_schema
from .errors import ProjectError, run
from .paths import PREPARED, SCHEMA_FILE, TEST_FILE, TRAIN_FILE


def main() -> None:
    params = load_params().data
    frame = read_raw(params)
    schema = infer_schema(frame, params)
    stratify = frame[params.target] if params.task == "classification" else None
    try:
        train, test = train_test_split(
            frame, test_size=params.test_size, random_state=params.seed, stratify=stratify
        )
    except ValueError as error:
        raise ProjectError(f"{params.path}: cannot split {len(frame)} rows: {error}") from None
    # The split keeps the raw row order within each part: stable input for the estimators.
    train, test = train.sort_index(), test.sort_index()
    with atomic_dir(PREPARED) as staging:
        write_prepared(train, staging / TRAIN_FILE.name)
        write_prepared(test, staging / TEST_FILE.name)
        write_schema(schema, staging / SCHEMA_FILE.name)
    features = len(schema["features"])
    print(f"prepare: {len(train)} train rows, {len(test)} test rows, {features} features")


if __name__ == "__main__":
    run(main)
