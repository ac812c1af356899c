"""What the model predicts, on /metrics: predicted classes, the score (or regression value), and
per feature the missing values and the bin of the training distribution each value falls in.

Every label value comes from the training schema and profile (feature names, class labels,
category levels, bin numbers), never from a request, so the number of series is fixed when the
model loads. The profile (profile.json, written by the delivery toolkit from the training split)
gives the bins and their training fractions, exported as gauges so that an alert can compare the
served distribution with the training one. Without a profile only the missing counts, the classes
and the score are kept.
"""

from __future__ import annotations

import os
from collections import Counter as Tally  # Counter is the Prometheus one here
from typing import Any

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.utils import floatToGoString

from .inputs import Inputs

ENABLED = os.environ.get("SERVICE_PREDICTION_METRICS", "1") != "0"
OTHER = "__other__"  # a category level the training data did not have (the API refuses them)
# Probability of the predicted class; the regression value uses the training deciles instead.
SCORE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
FEW = 8  # values below which observing them one by one is cheaper than the array operations


def observe_all(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(value)` for every value, in one locked write per bucket and one for the
    sum instead of two per value. prometheus_client has no such call, so this writes its
    Histogram's own fields (the version is pinned; the tests check it against observe())."""
    if len(values) < FEW:
        for value in values.tolist():
            histogram.observe(value)
        return
    bounds = histogram._upper_bounds  # ends with +inf; bucket i holds the values <= bounds[i]
    found = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)
    histogram._sum.inc(float(np.sum(values)))
    for bucket, count in zip(histogram._buckets, found[: len(bounds)], strict=True):  # not NaN
        if count:
            bucket.inc(int(count))


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many values fall in each bin: bin k is (edges[k-1], edges[k]], the last one above."""
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


class PredictionMetrics:
    def __init__(
        self,
        schema: dict[str, Any],
        profile: dict[str, Any] | None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        features = schema["features"]
        binned = (profile or {}).get("features", {})
        self.classes = [str(label) for label in schema.get("classes", [])]
        self.numeric = [i for i, f in enumerate(features) if f["kind"] == "numeric"]
        self.categorical = [i for i, f in enumerate(features) if f["kind"] != "numeric"]
        missing = Counter(
            "model_feature_missing",
            "Input values that were null, by feature",
            ["feature"],
            registry=registry,
        )
        bins = Counter(
            "model_feature_bin",
            "Input values by feature and training bin (numeric: the training deciles; "
            "categorical: the level)",
            ["feature", "bin"],
            registry=registry,
        )
        training = Gauge(
            "model_feature_training_fraction",
            "Fraction of the training values in each bin, by feature",
            ["feature", "bin"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.missing = [missing.labels(f["name"]) for f in features]
        # Numeric: bin k holds values in (edges[k-1], edges[k]]; categorical: one bin per level.
        self.edges: dict[int, np.ndarray] = {}
        self.levels: dict[int, dict[Any, int]] = {}
        self.bins: dict[int, list[Any]] = {}
        for i, feature in enumerate(features):
            name = feature["name"]
            if feature["kind"] == "numeric":
                if name not in binned:
                    continue
                self.edges[i] = np.asarray(binned[name]["edges"], dtype=np.float64)
                names = [str(k) for k in range(len(self.edges[i]) + 1)]
            else:
                names = [str(level) for level in feature["categories"]] + [OTHER]
                self.levels[i] = {level: k for k, level in enumerate(feature["categories"])}
            self.bins[i] = [bins.labels(name, label) for label in names]
            for label, fraction in zip(
                names, binned.get(name, {}).get("fractions", []), strict=False
            ):
                training.labels(name, label).set(fraction)

        # The numeric bins as one padded edge array (edge, 1, column) and one flat list of
        # counters (observe()).
        binned = [i for i in self.numeric if i in self.edges]
        self.binned = [self.numeric.index(i) for i in binned]
        width = max((len(self.edges[i]) for i in binned), default=0)
        self.edge_stack = np.full((width, 1, len(binned)), np.inf)
        for column, i in enumerate(binned):
            self.edge_stack[: len(self.edges[i]), 0, column] = self.edges[i]
        self.offsets = np.cumsum([0] + [len(self.bins[i]) for i in binned])[:-1]
        self.flat_bins = [child for i in binned for child in self.bins[i]]

        prediction = (profile or {}).get("prediction", {})
        if schema["task"] == "classification":
            predicted = Counter(
                "model_predicted_class", "Predictions by class", ["class"], registry=registry
            )
            self.predicted = {label: predicted.labels(label) for label in self.classes}
            buckets = SCORE_BUCKETS
            help_text = "Probability of the predicted class"
        else:
            self.predicted = {}
            buckets = tuple(prediction.get("edges", ())) or Histogram.DEFAULT_BUCKETS
            help_text = "Predicted value (buckets: the training predictions' deciles)"
        self.score = Histogram(
            "model_prediction_score", help_text, buckets=buckets, registry=registry
        )
        training_score = Gauge(
            "model_prediction_training_fraction",
            "Fraction of the training predictions at or below each score bucket (le)",
            ["le"],
            multiprocess_mode="max",
            registry=registry,
        )
        for edge, fraction in zip(
            prediction.get("edges", []), prediction.get("cumulative", []), strict=False
        ):
            training_score.labels(floatToGoString(edge)).set(fraction)

    def observe(self, inputs: Inputs, labels: list[Any], scores: np.ndarray) -> None:
        """Count one request's inputs and outputs: one increment per series, not per record."""
        if self.numeric:
            nulls = np.isnan(inputs.numbers)
            missing = nulls.sum(axis=0)
            for j in np.flatnonzero(missing):
                self.missing[self.numeric[j]].inc(int(missing[j]))
            if self.binned:
                # All binned columns at once: a value's bin is the number of its edges below it
                # (edges padded with +inf), shifted to that column's block of counters. Summed
                # over the leading edge axis: 3x faster than over a short last one.
                sub, known = inputs.numbers[:, self.binned], ~nulls[:, self.binned]
                found = (sub[None] > self.edge_stack).sum(axis=0) + self.offsets
                counts = np.bincount(found[known], minlength=len(self.flat_bins))
                for k in np.flatnonzero(counts):
                    self.flat_bins[k].inc(int(counts[k]))
        for i, values in zip(self.categorical, inputs.categories, strict=True):
            found = Tally(values)
            self._count(self.missing[i], found.pop(None, 0))
            counts = [0] * len(self.bins[i])
            other = len(counts) - 1
            for value, count in found.items():
                counts[self.levels[i].get(value, other)] += count
            self._bins(i, counts)
        for label, count in Tally(map(str, labels)).items():
            child = self.predicted.get(label)
            if child is not None:
                child.inc(count)
        observe_all(self.score, scores)

    def _bins(self, feature: int, counts: Any) -> None:
        for child, count in zip(self.bins[feature], counts, strict=True):
            self._count(child, int(count))

    @staticmethod
    def _count(child: Any, count: int) -> None:
        if count:  # an increment is a locked write to the multiprocess file: skip the zeros
            child.inc(count)
