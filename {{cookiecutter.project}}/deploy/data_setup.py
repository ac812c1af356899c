"""`make setup` (after the venv): make sure the raw data is in the workspace and the DVC cache.

A fresh clone pulls it, and the pushed pipeline outputs, from the DVC remote. Where the remote
has no copy (a new project, a CI runner that cannot reach the embedded default), the sample data
sets are written from scikit-learn, checked against the pointer's md5. A file already in the
workspace is committed to the cache (and can then be pushed).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.config import load_params
from {{ cookiecutter.__package }}.errors import ProjectError, run

from . import dvc_remote
from .commands import dvc
from .sample_data import restore_sample


def main() -> None:
    data = Path(load_params().data.path)
    pointer = data.with_name(data.name + ".dvc")
    if not pointer.is_file():
        raise ProjectError(f"{pointer}: not found; track your data with `dvc add {data}`")
    source = "the workspace"
    if not data.is_file():
        # A fresh clone: pull the data and also the pipeline outputs dvc.lock records, so that
        # `make train` restores the pushed model instead of retraining it (what is missing on the
        # remote is simply retrained).
        dvc_remote.pull(Path.cwd())
        source = "the DVC remote"
    if not data.is_file():
        [out] = yaml.safe_load(pointer.read_text(encoding="utf-8"))["outs"]
        if not restore_sample(data, out["md5"]):
            raise ProjectError(
                f"{data}: not on the DVC remote (see .dvc/config); run `make push` where it was added"
            )
        source = "scikit-learn's copy of the sample"
    dvc("commit", "--force", "--quiet", str(pointer), cwd=Path.cwd())
    print(f"setup: {data} from {source}, in the workspace and the DVC cache")


if __name__ == "__main__":
    run(main)
