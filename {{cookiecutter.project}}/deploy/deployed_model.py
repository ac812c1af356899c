"""The model a command works on: an environment's (its MLflow alias, as deployed there) or, with
no environment, the one `make train` left in this checkout. Batch scoring and the drift report
use it, so both name the same model version and run id."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError
from {{ cookiecutter.__package }}.paths import MODEL_FILE, SCHEMA_FILE
from {{ cookiecutter.__package }}.serving.batch import ScoringModel

from . import mlflow_client
from .artifacts import TrainRecord
from .naming import mlflow_alias
from .settings import Settings


@dataclass(frozen=True)
class DeployedModel(ScoringModel):
    """The model with its run's lineage tags (data hashes; empty for a local model). Its
    model_version is "local" for a model never registered."""

    tags: dict[str, str]


def local(settings: Settings) -> DeployedModel:
    from {{ cookiecutter.__package }}.data import read_schema
    from {{ cookiecutter.__package }}.evaluate import load_model

    if not MODEL_FILE.is_file():
        raise ProjectError(f"{MODEL_FILE}: not found; run `make train` (or give ENV=<environment>)")
    try:
        trained = TrainRecord.read(settings.root)
        version, run_id = trained.model_version, trained.mlflow_run_id
    except ProjectError:
        version, run_id = "local", "none"  # trained, never logged to MLflow
    source = f"{MODEL_FILE} (version {version})"
    return DeployedModel(load_model(), read_schema(), version, run_id, source, tags={})


def of_environment(settings: Settings, env: str) -> DeployedModel:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    import mlflow.sklearn

    alias = mlflow_alias(env)
    with mlflow_client.one_line_errors(settings.mlflow_tracking_uri):
        client = mlflow_client.client(settings.mlflow_tracking_uri)
        try:
            version = client.get_model_version_by_alias(settings.project, alias)
        except mlflow.exceptions.MlflowException:
            raise ProjectError(
                f"MLflow: model {settings.project!r} has no alias {alias!r}: "
                f"nothing is deployed in environment {env!r}"
            ) from None
        model = mlflow.sklearn.load_model(f"models:/{settings.project}/{version.version}")
        with tempfile.TemporaryDirectory() as scratch:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=SCHEMA_FILE.name, dst_path=scratch
            )
            schema = json.loads(Path(path).read_text(encoding="utf-8"))
        tags = client.get_run(version.run_id).data.tags
    source = f"{settings.project}@{alias} (version {version.version})"
    return DeployedModel(model, schema, str(version.version), version.run_id, source, tags)


def resolve(settings: Settings, env: str | None) -> DeployedModel:
    return of_environment(settings, env) if env else local(settings)
