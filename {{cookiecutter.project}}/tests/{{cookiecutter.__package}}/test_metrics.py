"""The prediction metrics count a request in one increment per series: a 1,000-record batch
leaves the same values as its records sent one by one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram
from test_fastpath import NUMERIC, schema

from {{ cookiecutter.__package }}.serving.inputs import Inputs
from {{ cookiecutter.__package }}.serving.metrics import FEW, PredictionMetrics, observe_all

PROFILE = {
    "features": {
        "age": {"edges": [30.0, 45.0, 60.0], "fractions": [0.25] * 4},
        "income k$": {"edges": [40.0, 55.0], "fractions": [0.3, 0.4, 0.3]},
        "city": {"fractions": [0.2, 0.3, 0.5]},
    },
    "prediction": {"edges": [-1.0, 0.0, 1.0], "cumulative": [0.1, 0.5, 0.9]},
}


def values(registry: CollectorRegistry) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def assert_same(batch: dict[tuple, float], single: dict[tuple, float]) -> None:
    """Equal counts; sums equal but for the order of the float additions."""
    assert batch.keys() == single.keys()
    for key, value in batch.items():
        if key[0].endswith("_sum"):
            assert value == pytest.approx(single[key], rel=1e-12), key
        else:
            assert value == single[key], key


def requests(task: str, count: int) -> tuple[list[list], list, np.ndarray]:
    """Rows with nulls, unknown levels, values on the bin edges; labels with an unknown one."""
    rng = np.random.default_rng(3)
    cities = ["paris", "lyon", "nice", "marseille", None]
    rows = [
        [
            None if i % 7 == 0 else float(rng.choice([30.0, 45.0, rng.uniform(0, 90)])),
            None if i % 11 == 0 else float(rng.normal(50, 15)),
            cities[i % 5],
        ]
        for i in range(count)
    ]
    if task == "classification":
        labels = [["no", "yes", "maybe"][i % 3] for i in range(count)]
        scores = rng.choice([0.5, 0.7, 1.0, rng.uniform(0.5, 1.0)], size=count)
    else:
        labels, scores = [], rng.normal(0, 1, size=count)
    return rows, labels, scores


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_batch_counts_as_its_records_one_by_one(task: str) -> None:
    spec = {**schema(task), "classes": ["no", "yes"]} if task == "classification" else schema(task)
    rows, labels, scores = requests(task, 1000)
    batch, single = CollectorRegistry(), CollectorRegistry()
    PredictionMetrics(spec, PROFILE, batch).observe(Inputs.from_rows(rows, NUMERIC), labels, scores)
    one_by_one = PredictionMetrics(spec, PROFILE, single)
    for r, row in enumerate(rows):
        one_by_one.observe(Inputs.from_rows([row], NUMERIC), labels[r : r + 1], scores[r : r + 1])
    assert_same(values(batch), values(single))
    assert values(batch)[("model_prediction_score_count", ())] == 1000
    assert sum(v for (name, _), v in values(batch).items() if name == "model_feature_bin_total")


@pytest.mark.parametrize("repeat", [1, FEW])  # one by one below FEW values, by array above
def test_observe_all_equals_the_histograms_own_observe(repeat: int) -> None:
    scores = np.repeat([-1.0, 0.1, 0.5, 0.5000001, 1.0, 2.0, math.inf], repeat)
    batch, single = CollectorRegistry(), CollectorRegistry()
    observe_all(Histogram("h", "h", buckets=(0.5, 1.0), registry=batch), scores)
    histogram = Histogram("h", "h", buckets=(0.5, 1.0), registry=single)
    for score in scores:
        histogram.observe(float(score))
    assert values(batch) == values(single)  # an infinite sum: compared exactly
    # NaN, as observe() does it: in no bucket, and the sum becomes NaN.
    observe_all(Histogram("n", "n", buckets=(0.5,), registry=batch), np.full(FEW, math.nan))
    after = values(batch)
    assert after[("n_count", ())] == 0 and math.isnan(after[("n_sum", ())])
