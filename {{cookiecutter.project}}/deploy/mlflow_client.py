"""Talking to MLflow: credentials kept out of the URI MLflow sees, bounded retries, and every
failure as one line naming the tracking server (credentials redacted).

A tracking URI may carry credentials (`https://user:password@mlflow.example.com`). MLflow would
print that URI in its own messages ("View run at ...", "API request to ... failed"), so the
credentials move to MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which MLflow sends as
basic auth, and MLflow only ever sees the redacted URI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from {{ cookiecutter.__package }}.errors import ProjectError

from .urls import redact, scrub

# MLflow retries a failing server for minutes by default (7 retries, backoff factor 2): a
# pipeline should fail within seconds and say why. Environment variables of the same name win.
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
STATUS = re.compile(r"error code (\d{3})")


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def connect(tracking_uri: str) -> str:
    """Point MLflow at the tracking server; returns the URI it was given (no credentials)."""
    import mlflow

    if is_server(tracking_uri):
        for name, value in RETRY_DEFAULTS.items():
            os.environ.setdefault(name, value)
        parts = urlsplit(tracking_uri)
        if parts.username is not None:
            os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
            os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password or "")
    clean = redact(tracking_uri)
    mlflow.set_tracking_uri(clean)
    mlflow.set_registry_uri(clean)
    return clean


def client(tracking_uri: str):
    """An MlflowClient for the tracking server (and its model registry)."""
    from mlflow import MlflowClient

    clean = connect(tracking_uri)
    return MlflowClient(tracking_uri=clean, registry_uri=clean)


def reason(error: Exception, tracking_uri: str) -> str:
    """What went wrong, in a few words: MLflow's messages are long, multi-line and may quote
    the request URL."""
    text = scrub(str(error), os.environ.get("MLFLOW_TRACKING_PASSWORD"))
    text = text.replace(tracking_uri, redact(tracking_uri))
    if found := ERRNO.search(text):
        return f"unreachable ({found[1].strip()})"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "unreachable (timed out)"
    if found := STATUS.search(text):
        code = int(found[1])
        if code in (401, 403):
            return (
                f"refused the credentials (HTTP {code}): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        return f"answered HTTP {code}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


@contextmanager
def one_line_errors(tracking_uri: str) -> Iterator[None]:
    """Turn any failure of MLflow (or of the HTTP below it) into one ProjectError line."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    try:
        yield
    except (MlflowException, RequestException) as error:
        raise ProjectError(
            f"MLflow {redact(tracking_uri)}: {reason(error, tracking_uri)}"
        ) from None
