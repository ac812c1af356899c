"""Where every pipeline file lives, relative to the repository root (dvc.yaml names the same)."""

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
LOCK_FILE = Path("dvc.lock")  # written by `dvc repro`
PREPARED = Path("data/prepared")
TRAIN_FILE = PREPARED / "train.parquet"
TEST_FILE = PREPARED / "test.parquet"
SCHEMA_FILE = PREPARED / "schema.json"
MODEL_FILE = Path("models/model.pkl")
METRICS_FILE = Path("metrics/metrics.json")
PREDICTIONS_FILE = Path("metrics/predictions.csv")
PLOTS_DIR = Path("metrics/plots")
