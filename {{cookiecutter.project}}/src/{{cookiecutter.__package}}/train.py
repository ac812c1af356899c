"""DVC stage `train`: fit the Pipeline on the training split, single-threaded and seeded."""

from __future__ import annotations

import pickle

from threadpoolctl import threadpool_limits

from .atomic import write_bytes
from .config import TrainParams, load_params
from .data import features_and_target, read_prepared, read_schema
from .errors import ProjectError, run
from .model import build_pipeline
from .paths import MODEL_FILE, TRAIN_FILE


def hint(params: TrainParams) -> str:
    """YAML 1.1 reads `1e-05` (no dot) as text: the usual cause of a number refused as a string."""
    for name, value in params.hyperparameters.items():
        try:
            number = repr(float(value)) if isinstance(value, str) else None
        except ValueError:
            continue
        if number:
            mantissa, e, exponent = number.partition("e")
            written = f"{mantissa}.0e{exponent}" if e and "." not in mantissa else number
            return f" ({name}: {value!r} is text in YAML; write it as {written})"
    return ""


def main() -> None:
    params = load_params().train
    schema = read_schema()
    features, target = features_and_target(read_prepared(TRAIN_FILE), schema)
    model = build_pipeline(schema, params)
    # One BLAS/OpenMP thread: parallel reductions can sum in a different order and change bits.
    with threadpool_limits(limits=1):
        try:
            model.fit(features, target)
        except ValueError as error:
            # scikit-learn checks the hyperparameters' types and ranges when fitting.
            if type(error).__name__ != "InvalidParameterError":
                raise
            raise ProjectError(
                f"params.yaml: train.hyperparameters: {error}{hint(params)}"
            ) from None
    write_bytes(MODEL_FILE, pickle.dumps(model, protocol=5))
    print(f"train: fitted {params.model} on {len(features)} rows -> {MODEL_FILE}")


if __name__ == "__main__":
    run(main)
