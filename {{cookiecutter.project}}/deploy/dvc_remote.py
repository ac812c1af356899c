"""The DVC remote: pull and push that fail with one line naming the remote and its URL.

    python -m deploy.dvc_remote push     `make push`: data, outputs and the run cache

`make setup` pulls through `pull()` (deploy/data_setup.py). DVC writes an object into its cache
or the remote only once it is complete, so a transfer cut short leaves nothing half-written;
rerunning the command finishes it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.__package }}.errors import ProjectError, run

from .urls import redact, scrub


def remote_config(root: Path) -> dict[str, str]:
    """DVC's merged configuration (system, global, repo, local) as `section.key` -> value."""
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "config", "--list"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return dict(line.split("=", 1) for line in listed.splitlines() if "=" in line)


def describe(root: Path) -> str:
    """`DVC remote 'name' (URL, endpoint URL)`, without credentials."""
    config = remote_config(root)
    name = config.get("core.remote")
    if not name:
        return "DVC remote (none set as default: `dvc remote add -d NAME URL`)"
    where = [redact(config.get(f"remote.{name}.url", "?"))]
    if endpoint := config.get(f"remote.{name}.endpointurl"):
        where.append(f"endpoint {redact(endpoint)}")
    return f"DVC remote {name!r} ({', '.join(where)})"


def first_error(output: str) -> str:
    """DVC's first ERROR line, the cause after its last ' - ' (the transfer that failed, e.g.
    `Could not connect to the endpoint URL: ...`)."""
    errors = [
        line[len("ERROR:") :].strip() for line in output.splitlines() if line.startswith("ERROR:")
    ]
    if not errors:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return lines[-1] if lines else "failed"
    return errors[0].rsplit(" - ", 1)[-1]


def transfer(root: Path, command: str, *args: str) -> str:
    """`dvc pull|push ARGS`; its output, or one line naming the remote and the cause."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", command, *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        cause = scrub(first_error(result.stdout + result.stderr))
        raise ProjectError(f"{describe(root)}: {command} failed: {cause}")
    return result.stdout


def pull(root: Path) -> None:
    """The data and the pipeline outputs dvc.lock records; what the remote lacks is retrained."""
    transfer(root, "pull", "--allow-missing")


def push(root: Path) -> None:
    """Data, outputs and the run cache, so that a fresh clone restores them without training."""
    pushed = transfer(root, "push", "--run-cache").strip()
    print(f"{describe(root)}: {pushed.splitlines()[-1] if pushed else 'pushed'}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args != ["push"]:
        raise ProjectError("usage: python -m deploy.dvc_remote push")
    push(Path.cwd())


if __name__ == "__main__":
    run(main)
