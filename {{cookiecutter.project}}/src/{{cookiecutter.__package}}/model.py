"""The scikit-learn Pipeline: imputation and encoding by column kind, then the estimator."""

from __future__ import annotations

from collections.abc import Callable

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
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .config import TrainParams
from .errors import ProjectError

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


def build_pipeline(schema: dict, params: TrainParams) -> Pipeline:
    choices = ESTIMATORS[schema["task"]]
    if params.model not in choices:
        raise ProjectError(
            f"params.yaml: train.model: {params.model!r} is not a {schema['task']} model "
            f"(choose one of: {', '.join(choices)})"
        )
    estimator = choices[params.model](params.seed, params.n_jobs)
    valid = estimator.get_params()
    unknown = sorted(set(params.hyperparameters) - set(valid))
    if unknown:
        raise ProjectError(
            f"params.yaml: train.hyperparameters.{unknown[0]}: not a parameter of {params.model}"
        )
    estimator.set_params(**params.hyperparameters)

    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    preprocess = ColumnTransformer(
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
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])
