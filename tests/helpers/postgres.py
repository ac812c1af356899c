"""Debian's PostgreSQL on 127.0.0.1, in a throw-away cluster (initdb) with password auth.

PostgreSQL refuses to run as root: as root, the cluster belongs to Debian's `postgres` user and
the programs run as that user. Its directory is outside pytest's private tmp (which that user
cannot enter) and is removed with the server.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from helpers.servers import Server, as_service_user, require_program

USER = "mlflow"


class PostgresServer(Server):
    name = "postgres"

    def __init__(self, workdir: Path, databases: tuple[str, ...] = ("mlflow",)):
        super().__init__(workdir)
        self.bin = Path(require_program("/usr/lib/postgresql/*/bin/initdb")).parent
        self.password = "pg-" + secrets.token_hex(8)
        self.databases = databases
        self.cluster = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.run_as = as_service_user("postgres")
        if self.run_as:
            shutil.chown(self.cluster, "postgres", "postgres")
        password_file = self.cluster / "password"
        password_file.write_text(self.password)
        if self.run_as:
            shutil.chown(password_file, "postgres", "postgres")
        self.program(
            "initdb", "--pgdata", str(self.cluster / "data"), "--username", USER,
            "--pwfile", str(password_file), "--auth", "scram-sha-256", "--encoding", "UTF8",
        )  # fmt: skip

    def program(self, name: str, *args: str) -> None:
        result = subprocess.run(
            [*self.run_as, str(self.bin / name), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"{name} failed: {result.stdout}{result.stderr}")

    def uri(self, database: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            *self.run_as, str(self.bin / "postgres"), "-D", str(self.cluster / "data"),
            "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.cluster}", "-c", "fsync=off",
        ]  # fmt: skip

    def ready(self) -> bool:
        found = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return found.returncode == 0

    def after_start(self) -> None:
        for database in self.databases:
            createdb = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
            result = subprocess.run(
                [*createdb, "-U", USER, database],
                env={"PGPASSWORD": self.password, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode and "already exists" not in result.stderr:
                raise RuntimeError(f"createdb {database}: {result.stderr}")

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        shutil.rmtree(self.cluster, ignore_errors=True)
