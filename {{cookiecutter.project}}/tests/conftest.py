"""Fixtures: a tiny project workspace (params.yaml + CSV) in a temporary directory. The metric
settings stay the task's defaults (null in params.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The schema `prepare` would write for a classifier of a numeric and a categorical column.
AGE_CITY_SCHEMA = {
    "target": "label",
    "task": "classification",
    "features": [
        {"name": "age", "kind": "numeric"},
        {"name": "city", "kind": "categorical", "categories": ["lyon", "paris"]},
    ],
    "classes": ["no", "yes"],
}


def tiny_frame(task: str, rows: int = 80, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical columns with missing values, like a real user's CSV."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype(float),
            "income k$": rng.normal(50, 15, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
        }
    )
    frame.loc[::7, "age"] = np.nan
    frame.loc[::11, "city"] = None
    signal = frame["income k$"] + (frame["city"] == "paris") * 10
    if task == "classification":
        frame["label"] = np.where(signal > signal.median(), "yes", "no")
    else:
        frame["label"] = signal * 2 + rng.normal(0, 1, rows)
    return frame


def write_workspace(root: Path, task: str, frame: pd.DataFrame | None = None, **overrides) -> dict:
    """params.yaml (from the project's own, pointed at a tiny CSV) and the CSV in `root`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(path="data/raw/tiny.csv", target="label", task=task, test_size=0.25)
    params["train"].update(
        model="logistic_regression" if task == "classification" else "ridge", hyperparameters={}
    )
    for block, values in overrides.items():
        params[block].update(values)
    (root / "data/raw").mkdir(parents=True, exist_ok=True)
    (tiny_frame(task) if frame is None else frame).to_csv(root / "data/raw/tiny.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


@pytest.fixture(params=["classification", "regression"])
def workspace(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project of either task as the working directory."""
    write_workspace(tmp_path, request.param)
    monkeypatch.chdir(tmp_path)
    return tmp_path
