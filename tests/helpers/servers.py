"""Real servers for the end-to-end tests: each one a process on 127.0.0.1 that its fixture
starts, and that a test may stop (an outage) and start again on the same port.

A server that cannot start fails the test with the tail of its log; it never skips under
CI=true (`require_program`).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers.project import IN_CI

START_TIMEOUT = 180  # seconds; MLflow on PostgreSQL migrates two databases on first start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_program(pattern: str) -> str:
    """The newest file matching `pattern` (a path glob, for programs off PATH such as
    PostgreSQL's); skip without it, but fail under CI, where `make tools` installs it."""
    found = sorted(glob.glob(pattern))
    if found:
        return found[-1]
    message = f"{pattern} is not installed (run `make tools`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def as_service_user(user: str) -> list[str]:
    """Prefix that runs a command as `user` when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={user}",
        f"--regid={user}",
        "--init-groups",
    ]


class Server:
    """One server process in its own process group (so stopping it stops its workers too)."""

    name = "server"

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = workdir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    # -- what a server is
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        """Accepts connections; subclasses ask a real question."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def after_start(self) -> None:
        """Bring the server to its working state (create a bucket, say) after each start."""

    # -- lifecycle
    def start(self) -> None:
        with self.log.open("a", encoding="utf-8") as output:
            self.process = subprocess.Popen(
                self.command(),
                env=self.env(),
                cwd=self.workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if self.process.poll() is not None else "timed out"
                self.stop()
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
                pytest.fail(f"{self.name} on port {self.port} {state} before it was ready:\n{tail}")
            time.sleep(0.3)
        self.after_start()

    def stop(self, crash: bool = False) -> None:
        """Shut the server down (SIGTERM), or kill it as a crash would (SIGKILL, no goodbye)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL if crash else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # The port is free again once nothing answers there (workers may linger a moment).
        deadline = time.monotonic() + 30
        while Server.ready(self) and time.monotonic() < deadline:
            time.sleep(0.2)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
