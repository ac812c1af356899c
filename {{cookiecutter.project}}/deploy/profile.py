"""The training profile stored with the model (profile.json): per numeric feature the deciles of
the training split and the fraction of values in each bin, per categorical feature the fraction
of each level, and the distribution of the model's own scores on that split (on an even sample
of it when it is large).

The service's prediction metrics use it for their bins and training-fraction gauges
(serving/metrics.py); `make train` logs it to the MLflow run and `make bento` stores it with the
model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from {{ cookiecutter.__package }}.serving.metrics import SCORE_BUCKETS, bin_counts

QUANTILES = np.linspace(0.1, 0.9, 9)
# The model's scores are profiled on an even sample of at most this many rows: it bounds each
# fraction's error to a fraction of a percent and spares `make train` a predict on the whole split.
SCORE_ROWS = 100_000


def fractions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c) / total, 6) if total else 0.0 for c in counts]


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    values = values[~np.isnan(values)]
    edges = np.unique(np.quantile(values, QUANTILES)) if len(values) else np.array([])
    return {"edges": edges.tolist(), "fractions": fractions(bin_counts(edges, values))}


def build(features: Any, schema: dict[str, Any], model: Any) -> dict[str, Any]:
    """The profile of `features` (the training split, typed as for training) under `model`."""
    profile: dict[str, Any] = {"rows": len(features), "features": {}}
    for feature in schema["features"]:
        column = features[feature["name"]]
        if feature["kind"] == "numeric":
            profile["features"][feature["name"]] = numeric_profile(column.to_numpy(np.float64))
        else:
            levels = [str(level) for level in feature["categories"]]
            counts = column.dropna().astype(str).value_counts()
            profile["features"][feature["name"]] = {
                "fractions": fractions(np.array([counts.get(level, 0) for level in levels]))
            }
    sample = features.iloc[:: -(-len(features) // SCORE_ROWS)] if len(features) else features
    if schema["task"] == "classification":
        scores = model.predict_proba(sample).max(axis=1)
        edges = np.array(SCORE_BUCKETS)
    else:
        scores = model.predict(sample).astype(np.float64)
        edges = np.unique(np.quantile(scores, QUANTILES))
    cumulative = np.cumsum(bin_counts(edges, scores))[: len(edges)] / max(len(scores), 1)
    profile["prediction"] = {"edges": edges.tolist(), "cumulative": cumulative.round(6).tolist()}
    return profile


def write(profile: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
