"""Keep MLflow model aliases in step with environments: `env-<env>` and `production` point at the
version deployed there, and move only after the GitOps commit is pushed.

The registry is a view of what runs where; the GitOps repo is the truth. So every failure here
is a warning (one line, naming the server) and never fails a deploy or a teardown. mlflow is
imported lazily, only when there is a registry to talk to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from . import mlflow_client
from .naming import mlflow_alias
from .urls import scrub


def _on_registry(tracking_uri: str, what: str, action: Callable) -> None:
    if not tracking_uri:
        return
    try:
        with mlflow_client.one_line_errors(tracking_uri):
            action(mlflow_client.client(tracking_uri))
    except Exception as error:  # noqa: BLE001 - see module docstring
        print(f"warning: could not {what}: {scrub(str(error))}", file=sys.stderr)


def set_alias(tracking_uri: str, model: str | None, version: str | None, env: str) -> None:
    if not (model and version):
        return
    alias = mlflow_alias(env)

    def assign(client) -> None:
        client.set_registered_model_alias(model, alias, version)
        print(f"MLflow alias {model}@{alias} -> version {version}")

    _on_registry(tracking_uri, f"set MLflow alias {model}@{alias}", assign)


def delete_alias(tracking_uri: str, model: str | None, env: str) -> None:
    if not model:
        return
    alias = mlflow_alias(env)

    def delete(client) -> None:
        client.delete_registered_model_alias(model, alias)
        print(f"MLflow alias {model}@{alias} deleted")

    _on_registry(tracking_uri, f"delete MLflow alias {model}@{alias}", delete)
