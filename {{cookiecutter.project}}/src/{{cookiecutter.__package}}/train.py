"""DVC stage `train`: fit the Pipeline on the training split, single-threaded and seeded."""

from __future__ import annotations

import pickle

from threadpoolctl import threadpool_limits

from .atomic import write_bytes
from .config import load_params
from .data import features_and_target, read_prepared, read_schema
from .errors import run
from .model import build_pipeline
from .paths import MODEL_FILE, TRAIN_FILE


def main() -> None:
    params = load_params().train
    schema = read_schema()
    features, target = features_and_target(read_prepared(TRAIN_FILE), schema)
    model = build_pipeline(schema, params)
    # One BLAS/OpenMP thread: parallel reductions can sum in a different order and change bits.
    with threadpool_limits(limits=1):
        model.fit(features, target)
    write_bytes(MODEL_FILE, pickle.dumps(model, protocol=5))
    print(f"train: fitted {params.model} on {len(features)} rows -> {MODEL_FILE}")


if __name__ == "__main__":
    run(main)
