"""The scikit-learn Pipeline: derived features, imputation and encoding by column kind, then
the estimator. Add an estimator to ESTIMATORS to make it a choice of params.yaml train.model.

Histogram gradient boosting bins the numbers, routes missing values and splits on categories
itself: it gets the numeric columns as they are and the categorical ones as ordinal codes marked
categorical, which fits several times faster and in a fraction of the memory of a one-hot matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from .config import TrainParams
from .errors import ProjectError
from .features import DERIVED, add_derived

# name -> factory(seed, n_jobs): every estimator gets the seed and the pinned n_jobs it accepts.
ESTIMATORS: dict[str, dict[str, Callable]] = {
    "classification": {
        "logistic_regression": lambda seed, n_jobs: LogisticRegression(random_state=seed),
        "random_forest": lambda seed, n_jobs: RandomForestClassifier(
            random_state=seed, n_jobs=n_jobs
        ),
        "hist_gradient_boosting": lambda seed, n_jobs: HistGradientBoostingClassifier(
            random_state=seed
        ),
    },
    "regression": {
        "ridge": lambda seed, n_jobs: Ridge(random_state=seed),
        "random_forest": lambda seed, n_jobs: RandomForestRegressor(
            random_state=seed, n_jobs=n_jobs
        ),
        "hist_gradient_boosting": lambda seed, n_jobs: HistGradientBoostingRegressor(
            random_state=seed
        ),
    },
}


def check_contract(estimator, task: str, name: str) -> None:
    """What evaluate and the service rely on: a classifier with class probabilities (log loss,
    ROC and the API's `probabilities`), or a regressor."""
    where = f"params.yaml: train.model: {name!r}"
    if task == "regression" and not is_regressor(estimator):
        raise ProjectError(f"{where} is not a regressor")
    if task == "classification" and not is_classifier(estimator):
        raise ProjectError(f"{where} is not a classifier")
    if task == "classification" and not hasattr(estimator, "predict_proba"):
        raise ProjectError(
            f"{where} has no predict_proba, which evaluate (log loss, ROC) and the service "
            "(class probabilities) need: wrap it, e.g. CalibratedClassifierCV(LinearSVC())"
        )


def build_pipeline(schema: dict, params: TrainParams) -> Pipeline:
    choices = ESTIMATORS[schema["task"]]
    if params.model not in choices:
        raise ProjectError(
            f"params.yaml: train.model: {params.model!r} is not a {schema['task']} model "
            f"(choose one of: {', '.join(choices)})"
        )
    estimator = choices[params.model](params.seed, params.n_jobs)
    check_contract(estimator, schema["task"], params.model)
    valid = estimator.get_params()
    unknown = sorted(set(params.hyperparameters) - set(valid))
    if unknown:
        raise ProjectError(
            f"params.yaml: train.hyperparameters.{unknown[0]}: not a parameter of {params.model}"
        )
    estimator.set_params(**params.hyperparameters)

    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"] + list(DERIVED)
    categorical = [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        preprocess = native_preprocess(numeric, categorical)
        # The codes follow the numeric columns; a user's own choice in params.yaml stays.
        if "categorical_features" not in params.hyperparameters:
            codes = range(len(numeric), len(numeric) + len(categorical))
            estimator.set_params(categorical_features=list(codes) or None)
    else:
        preprocess = encoded_preprocess(numeric, categorical)
    steps = [("preprocess", preprocess), ("estimator", estimator)]
    if DERIVED:
        steps.insert(0, ("features", FunctionTransformer(add_derived)))
    return Pipeline(steps)


def encoded_preprocess(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Numbers imputed with the median and scaled; categories imputed with the most frequent
    level and one-hot encoded (an unknown level encodes as all zeros)."""
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )


def native_preprocess(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Numbers as they are (missing stays NaN); categories as ordinal codes, with missing and
    unknown levels as NaN, which the estimator treats as missing."""
    codes = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    return ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", codes, categorical)],
        verbose_feature_names_out=False,
    )
