"""Run inside a generated project with its venv: what the served model should answer.

Prints JSON: sample records from the raw CSV, the registered model's in-process predictions for
them (loaded straight from MLflow, as `make bento` does), and the MLflow lineage of that version.
Used by tests/test_service.py, which runs in the template's venv without scikit-learn or MLflow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from deploy.settings import load_settings
from mlflow import MlflowClient

ROWS = 20


def sample_records(schema: dict) -> pd.DataFrame:
    """The first rows of the raw data, typed as in training (categories as text)."""
    kinds = {feature["name"]: feature["kind"] for feature in schema["features"]}
    [csv] = sorted(Path("data/raw").glob("*.csv"))
    text = {name: str for name, kind in kinds.items() if kind == "categorical"}
    frame = pd.read_csv(csv, dtype=text, nrows=ROWS)[list(kinds)]
    return frame.astype(
        {name: object if kind == "categorical" else float for name, kind in kinds.items()}
    )


def main() -> None:
    settings = load_settings()
    built = json.loads(Path("build/bento.json").read_text(encoding="utf-8"))
    schema = json.loads(Path("data/prepared/schema.json").read_text(encoding="utf-8"))
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    version = client.get_model_version(settings.project, built["model_version"])
    tags = client.get_run(version.run_id).data.tags
    model = mlflow.sklearn.load_model(f"models:/{settings.project}/{built['model_version']}")
    frame = sample_records(schema)
    records = [
        {name: None if pd.isna(value) else value for name, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    result = {
        "schema": schema,
        "records": records,
        "predictions": model.predict(frame).tolist(),
        "probabilities": model.predict_proba(frame).tolist()
        if schema["task"] == "classification"
        else None,
        "classes": [str(c) for c in getattr(model, "classes_", [])],
        "lineage": {
            "model_name": settings.project,
            "model_version": str(version.version),
            "model_alias": built["model_alias"],
            "mlflow_run_id": version.run_id,
            "git_commit": tags.get("git_commit", ""),
            "data_md5": tags.get("data_md5", ""),
        },
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
