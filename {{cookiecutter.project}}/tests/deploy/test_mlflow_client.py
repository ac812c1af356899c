"""deploy/mlflow_client.py: credentials leave the URI MLflow sees, and failures are one line."""

from __future__ import annotations

import os
from collections.abc import Iterator

import mlflow
import pytest

from {{ cookiecutter.__package }}.errors import ProjectError

from deploy import mlflow_client

CLOSED = "http://ci:s3cr%40t@127.0.0.1:9"  # port 9 (discard): nothing listens there


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """connect() sets these variables and MLflow's URIs: all are restored afterwards."""
    uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    for name in (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        monkeypatch.setenv(name, "")  # recorded, so the undo restores the original state
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once
    yield
    mlflow.set_tracking_uri(uris[0])
    mlflow.set_registry_uri(uris[1])


def test_credentials_move_from_the_uri_to_basic_auth_variables() -> None:
    assert mlflow_client.connect(CLOSED) == "http://127.0.0.1:9"
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ci"
    assert "@" in os.environ["MLFLOW_TRACKING_PASSWORD"]  # percent-decoded: s3cr%40t


def test_an_unreachable_server_is_one_line_naming_it_without_credentials() -> None:
    with pytest.raises(ProjectError) as failed:
        with mlflow_client.one_line_errors(CLOSED):
            mlflow_client.client(CLOSED).search_experiments()
    message = str(failed.value)
    assert message.startswith("MLflow http://127.0.0.1:9: unreachable (")
    assert "\n" not in message and "s3cr" not in message and "ci:" not in message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            "API request to endpoint /api/2.0/mlflow/experiments/search failed with error code "
            "401 != 200. Response body: 'You are not authenticated.'",
            "refused the credentials (HTTP 401)",
        ),
        ("failed with error code 503 != 200", "answered HTTP 503"),
        ("RESOURCE_DOES_NOT_EXIST: Registered model alias env-x not found.\nmore", "RESOURCE_"),
    ],
)
def test_reasons_are_short(error: str, reason: str) -> None:
    assert mlflow_client.reason(Exception(error), CLOSED).startswith(reason)
