"""`make setup` (after the venv): make sure the raw data is in the workspace and the DVC cache.

A fresh clone pulls it, and the pushed pipeline outputs, from the DVC remote; a freshly generated
project already has the file, so it is committed to the cache (and can then be pushed).
"""

from __future__ import annotations

from pathlib import Path

from {{ cookiecutter.__package }}.config import load_params
from {{ cookiecutter.__package }}.errors import ProjectError, run

from . import dvc_remote
from .commands import dvc


def main() -> None:
    data = Path(load_params().data.path)
    pointer = data.with_name(data.name + ".dvc")
    if not pointer.is_file():
        raise ProjectError(f"{pointer}: not found; track your data with `dvc add {data}`")
    if data.is_file():
        dvc("commit", "--force", "--quiet", str(pointer), cwd=Path.cwd())
    else:
        # A fresh clone: pull the data and also the pipeline outputs dvc.lock records, so that
        # `make train` restores the pushed model instead of retraining it (what is missing on the
        # remote is simply retrained).
        dvc_remote.pull(Path.cwd())
        if not data.is_file():
            raise ProjectError(f"{data}: not on the DVC remote; run `make push` where it was added")
    print(f"setup: {data} is in the workspace and the DVC cache")


if __name__ == "__main__":
    run(main)
