"""The prediction metrics: counts land in the training bins, and no label value ever comes from a
request, however hostile its values (fixed series, bounded cardinality)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import AGE_CITY_SCHEMA
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

from {{ cookiecutter.__package }}.serving.inputs import Inputs
from {{ cookiecutter.__package }}.serving.metrics import OTHER, PredictionMetrics

from deploy import profile

NUMERIC = [True, False]  # AGE_CITY_SCHEMA: age, city
HOSTILE = ["paris\n# HELP x", 'x"}', "a" * 10_000, "{{7*7}}", "", "\x00"]


class OnAge:
    """A classifier on the numeric column only: enough to profile its scores."""

    def __init__(self, frame: pd.DataFrame, target: np.ndarray) -> None:
        self.model = LogisticRegression().fit(frame[["age"]], target)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(frame[["age"]])


def training() -> tuple[pd.DataFrame, dict]:
    age = np.arange(100, dtype=np.float64)
    frame = pd.DataFrame({"age": age, "city": pd.Series(["lyon", "paris"] * 50, dtype=object)})
    return frame, profile.build(frame, AGE_CITY_SCHEMA, OnAge(frame, (age > 50).astype(int)))


def samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


def test_the_profile_bins_the_training_split_in_deciles() -> None:
    _, built = training()
    age = built["features"]["age"]
    assert len(age["edges"]) == 9 and sum(age["fractions"]) == pytest.approx(1.0)
    assert all(abs(f - 0.1) < 0.011 for f in age["fractions"])
    assert built["features"]["city"]["fractions"] == [0.5, 0.5]
    assert built["prediction"]["cumulative"][-1] == 1.0


def test_scores_of_a_large_split_are_profiled_on_an_even_sample(monkeypatch) -> None:
    frame, full = training()
    seen = []

    class Counting(OnAge):
        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            seen.append(frame["age"].to_numpy())
            return super().predict_proba(frame)

    monkeypatch.setattr(profile, "SCORE_ROWS", 30)
    built = profile.build(frame, AGE_CITY_SCHEMA, Counting(frame, (frame["age"] > 50).astype(int)))
    assert [ages.tolist() for ages in seen] == [list(range(0, 100, 4))]
    assert built["rows"] == 100 and built["features"] == full["features"]
    sampled, exact = built["prediction"]["cumulative"], full["prediction"]["cumulative"]
    assert max(abs(a - b) for a, b in zip(sampled, exact, strict=True)) <= 0.05


def test_values_are_counted_in_their_training_bin() -> None:
    _, built = training()
    registry = CollectorRegistry()
    metrics = PredictionMetrics(AGE_CITY_SCHEMA, built, registry)
    rows = [[-5.0, "lyon"], [99.0, None], [None, "paris"]]
    metrics.observe(Inputs.from_rows(rows, NUMERIC), ["no", "yes", "no"], np.full(3, 0.9))
    bins = samples(registry, "model_feature_bin_total")
    assert bins[(("bin", "0"), ("feature", "age"))] == 1
    assert bins[(("bin", "9"), ("feature", "age"))] == 1
    assert bins[(("bin", "lyon"), ("feature", "city"))] == 1
    missing = samples(registry, "model_feature_missing_total")
    assert missing == {(("feature", "age"),): 1, (("feature", "city"),): 1}
    classes = samples(registry, "model_predicted_class_total")
    assert classes == {(("class", "no"),): 2, (("class", "yes"),): 1}
    fractions = samples(registry, "model_feature_training_fraction")
    assert fractions[(("bin", "paris"), ("feature", "city"))] == 0.5


def test_hostile_values_never_become_label_values() -> None:
    _, built = training()
    registry = CollectorRegistry()
    metrics = PredictionMetrics(AGE_CITY_SCHEMA, built, registry)
    allowed = {"age", "city", "no", "yes", "lyon", "paris", OTHER, *map(str, range(10))}
    before = {name: len(samples(registry, name)) for name in ("model_feature_bin_total",)}
    rows = [[1.0, value] for value in HOSTILE]
    metrics.observe(Inputs.from_rows(rows, NUMERIC), HOSTILE, np.full(len(HOSTILE), 0.5))
    values = {
        value
        for metric in registry.collect()
        for sample in metric.samples
        for key, value in sample.labels.items()
        if key != "le"
    }
    assert values <= allowed
    assert {name: len(samples(registry, name)) for name in before} == before
    assert samples(registry, "model_feature_bin_total")[
        (("bin", OTHER), ("feature", "city"))
    ] == len(HOSTILE)
    assert sum(samples(registry, "model_predicted_class_total").values()) == 0
