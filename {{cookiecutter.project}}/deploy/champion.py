"""Champion against challenger on one hold-out: the production model (the registry's
`production` alias) scored on the new model's test split, so that the gate compares two models on
the same rows rather than today's score with a number measured on another split."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from {{ cookiecutter.__package }}.paths import TEST_FILE

from .naming import PRODUCTION
from .settings import Settings
from .urls import redact


@dataclass(frozen=True)
class Comparison:
    """Both models' metrics on the challenger's test split (the champion's may be missing)."""

    rows: int
    split_md5: str
    challenger: dict[str, float]
    champion: dict[str, float] = field(default_factory=dict)
    champion_version: str | None = None
    why_not: str = ""  # why the champion has no scores here, when it has none

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "splitMd5": self.split_md5,
            "champion": {"modelVersion": self.champion_version, "scores": self.champion},
            "challenger": {"scores": self.challenger},
            **({"notScored": self.why_not} if self.why_not else {}),
        }


def split_md5() -> str:
    return hashlib.md5(TEST_FILE.read_bytes(), usedforsecurity=False).hexdigest()


def production_model(settings: Settings) -> tuple[Any, str] | str:
    """The model behind the registry's `production` alias and its version, or why there is none."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    uri = settings.mlflow_tracking_uri
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = client.get_model_version_by_alias(settings.project, PRODUCTION).version
        mlflow.set_tracking_uri(uri)
        model = mlflow.sklearn.load_model(f"models:/{settings.project}/{version}")
    except MlflowException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"no `{PRODUCTION}` model in the registry at {redact(uri)} ({first[:200]})"
    return model, str(version)


def test_split() -> tuple[Any, Any, dict[str, Any]]:
    """This checkout's test split (the new model's), typed by its schema."""
    from {{ cookiecutter.__package }}.data import features_and_target, read_prepared, read_schema

    schema = read_schema()
    features, target = features_and_target(read_prepared(TEST_FILE), schema)
    return features, target, schema


def score_on_split(model: Any, features: Any, target: Any, task: str) -> dict[str, float] | str:
    """A model's metrics on the split, or why it cannot be scored there: the champion may need
    columns the new data has not, or not know a new class."""
    from {{ cookiecutter.__package }}.evaluate import score

    needed = list(getattr(model, "feature_names_in_", features.columns))
    missing = [column for column in needed if column not in features.columns]
    if missing:
        return f"it needs columns the new data has not: {', '.join(map(str, missing[:5]))}"
    try:
        _, scores = score(model, features[needed], target, task)
    except (ValueError, TypeError, KeyError) as error:
        return f"it cannot score the new split: {str(error).splitlines()[0][:200]}"
    return scores


def compare(settings: Settings, challenger: dict[str, float]) -> Comparison:
    """The comparison for a production deploy: run from the repository root, after `make train`."""
    if not TEST_FILE.is_file():
        why = f"no test split here ({TEST_FILE}: run `make train`)"
        return Comparison(rows=0, split_md5="", challenger=challenger, why_not=why)
    features, target, schema = test_split()
    base = {"rows": len(target), "split_md5": split_md5(), "challenger": challenger}
    found = production_model(settings)
    if isinstance(found, str):
        return Comparison(**base, why_not=found)
    model, version = found
    scores = score_on_split(model, features, target, schema["task"])
    if isinstance(scores, str):
        return Comparison(
            **base, champion_version=version, why_not=f"production v{version}: {scores}"
        )
    return Comparison(**base, champion=scores, champion_version=version)
