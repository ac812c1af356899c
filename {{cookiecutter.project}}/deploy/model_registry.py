"""Keep MLflow model aliases in step with environments: `env-<env>` and `production` point at the
version deployed there, and move only after the GitOps commit is pushed.

The registry is a view of what runs where; the GitOps repo is the truth. So every failure here
is a warning and never fails a deploy or a teardown.
"""

from __future__ import annotations

import os
import sys

from .naming import mlflow_alias


def _client(tracking_uri: str):
    if not tracking_uri:
        return None
    # MLflow retries an unreachable server for minutes by default; a warning should not wait that long.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def set_alias(tracking_uri: str, model: str | None, version: str | None, env: str) -> None:
    if not (model and version):
        return
    try:
        client = _client(tracking_uri)
        if client:
            client.set_registered_model_alias(model, mlflow_alias(env), version)
            print(f"MLflow alias {model}@{mlflow_alias(env)} -> version {version}")
    except Exception as exc:  # noqa: BLE001 - see module docstring
        print(f"warning: could not set MLflow alias for {env}: {exc}", file=sys.stderr)


def delete_alias(tracking_uri: str, model: str | None, env: str) -> None:
    if not model:
        return
    try:
        client = _client(tracking_uri)
        if client:
            client.delete_registered_model_alias(model, mlflow_alias(env))
            print(f"MLflow alias {model}@{mlflow_alias(env)} deleted")
    except Exception as exc:  # noqa: BLE001 - see module docstring
        print(f"warning: could not delete MLflow alias for {env}: {exc}", file=sys.stderr)
