"""DVC stage `evaluate`: metrics, plots and the frozen predictions on the test split."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import label_binarize
from threadpoolctl import threadpool_limits

from .atomic import atomic_dir, write_text
from .config import load_params
from .data import features_and_target, read_prepared, read_schema
from .errors import ProjectError, run
from .paths import METRICS_FILE, MODEL_FILE, PLOTS_DIR, PREDICTIONS_FILE, TEST_FILE


def load_model(path: Path = MODEL_FILE):
    with path.open("rb") as handle:
        return pickle.load(handle)  # our own DVC output, never user-supplied


def predict_frame(model, features: pd.DataFrame, task: str) -> pd.DataFrame:
    """Predictions (and class probabilities) in test-split order: what reproduce compares."""
    if task == "classification" and isinstance(model, Pipeline) and len(model) > 1:
        # Transform once for both calls: the steps a Pipeline runs itself, so the same bits.
        features, model = model[:-1].transform(features), model[-1]
    frame = pd.DataFrame({"prediction": model.predict(features)})
    if task == "classification":
        probabilities = model.predict_proba(features)
        for i, label in enumerate(model.classes_):
            frame[f"proba_{label}"] = probabilities[:, i]
    return frame


def codes(labels, classes: list) -> np.ndarray:
    """Labels as their index in the sorted classes (-1 for any other): the same metrics, without
    scikit-learn sorting the labels' text again for each one (seconds on a large split)."""
    return pd.Categorical(labels, categories=classes).codes.astype(np.int64)


def classification_metrics(target: pd.Series, predictions: pd.DataFrame, classes) -> dict:
    proba = predictions[[f"proba_{c}" for c in classes]].to_numpy()
    actual, predicted = codes(target, classes), codes(predictions["prediction"], classes)
    indices = list(range(len(classes)))
    scores = {
        "accuracy": metrics.accuracy_score(actual, predicted),
        "f1_macro": metrics.f1_score(actual, predicted, average="macro"),
        "log_loss": metrics.log_loss(actual, proba, labels=indices),
    }
    if target.nunique() == len(classes):
        scores["roc_auc"] = (
            metrics.roc_auc_score(actual, proba[:, 1])
            if len(classes) == 2
            else metrics.roc_auc_score(actual, proba, multi_class="ovr", labels=indices)
        )
    return scores


def regression_metrics(target: pd.Series, predictions: pd.DataFrame) -> dict:
    return {
        "r2": metrics.r2_score(target, predictions["prediction"]),
        "rmse": metrics.root_mean_squared_error(target, predictions["prediction"]),
        "mae": metrics.mean_absolute_error(target, predictions["prediction"]),
    }


def write_plots(target: pd.Series, predictions: pd.DataFrame, classes: list, plots: Path) -> None:
    if not classes:
        pd.DataFrame({"actual": target.to_numpy(), "predicted": predictions["prediction"]}).to_csv(
            plots / "residuals.csv", index=False
        )
        return
    pd.DataFrame(
        {
            "actual": target.astype(str).to_numpy(),
            "predicted": predictions["prediction"].astype(str),
        }
    ).to_csv(plots / "confusion_matrix.csv", index=False)
    # Binary: the positive class; more classes: the micro-averaged one-vs-rest curve.
    truth = label_binarize(codes(target, classes), classes=range(len(classes)))
    proba = predictions[[f"proba_{c}" for c in classes]].to_numpy()
    if len(classes) == 2:
        truth, proba = truth.ravel(), proba[:, 1]
    fpr, tpr, _ = metrics.roc_curve(np.ravel(truth), np.ravel(proba))
    pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(plots / "roc.csv", index=False)


def score(model, features: pd.DataFrame, target: pd.Series, task: str):
    """The model's predictions on a split, and every metric of its task on them. Also how the
    toolkit scores the production model on a new model's test split, for the gate."""
    # One BLAS thread, as in training: the frozen predictions must not depend on the core count.
    with threadpool_limits(limits=1):
        predictions = predict_frame(model, features, task)
    classes = list(model.classes_) if task == "classification" else []
    scores = (
        classification_metrics(target, predictions, classes)
        if classes
        else regression_metrics(target, predictions)
    )
    return predictions, {name: float(value) for name, value in scores.items()}


def main() -> None:
    params = load_params()
    schema = read_schema()
    features, target = features_and_target(read_prepared(TEST_FILE), schema)
    model = load_model()
    predictions, scores = score(model, features, target, schema["task"])
    classes = list(model.classes_) if schema["task"] == "classification" else []
    primary = params.evaluate.primary_metric
    if primary not in scores:
        # roc_auc needs every class in the test split.
        raise ProjectError(
            f"params.yaml: evaluate.primary_metric: {primary!r} could not be computed on this "
            f"test split (computed: {', '.join(scores)})"
        )
    with atomic_dir(PLOTS_DIR) as plots:
        write_plots(target, predictions, classes, plots)
    write_text(PREDICTIONS_FILE, predictions.to_csv(index=False))
    write_text(METRICS_FILE, json.dumps(scores, indent=2) + "\n")
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    run(main)
