"""A real `mlflow server` for tests, from the dev venv (the generated project's MLflow version,
plus the PostgreSQL driver and the auth app a team's server has).

Tests take the session's sqlite-backed server as the `mlflow_server_uri` fixture (conftest.py):

    def test_x(mlflow_server_uri): ...           # http://127.0.0.1:<port>

or, for a private server, `with mlflow_server(workdir) as uri: ...`. A server as teams run it
(PostgreSQL, artifacts proxied to S3, basic auth) is `MlflowServer(..., backend=..., artifacts=...,
auth_database=...)` (tests/test_real_services.py). Starting takes ~12 s and ~560 MB (a minute on
PostgreSQL, which it migrates first), hence one server per session.
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.project import QUIET_TOOLS
from helpers.servers import Server

ADMIN = "admin"


class MlflowServer(Server):
    name = "mlflow"

    def __init__(
        self,
        workdir: Path,
        backend: str,
        artifacts: str,
        extra_env: dict[str, str] | None = None,
        auth_database: str | None = None,
    ):
        super().__init__(workdir)
        self.backend, self.artifacts = backend, artifacts
        self.extra_env = extra_env or {}
        self.auth_database = auth_database
        self.admin_password = "mlflow-" + secrets.token_hex(8) if auth_database else None
        self.uri = f"http://127.0.0.1:{self.port}"

    def uri_with_credentials(self) -> str:
        return f"http://{ADMIN}:{self.admin_password}@127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self.backend, "--artifacts-destination", self.artifacts,
            "--workers", "1",
        ]  # fmt: skip
        return command + (["--app-name", "basic-auth"] if self.auth_database else [])

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **QUIET_TOOLS,
            **self.extra_env,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        if self.auth_database:
            config = self.workdir / "basic_auth.ini"
            config.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = {self.auth_database}\nadmin_username = {ADMIN}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                encoding="utf-8",
            )
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": str(config),
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            }
        return env

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """`mlflow server` on sqlite and a local artifact directory; yields its URI."""
    backend = f"sqlite:///{workdir / 'mlflow.db'}"
    with MlflowServer(workdir, backend, str(workdir / "artifacts")) as server:
        yield server.uri
