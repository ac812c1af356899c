"""Before a scheduled retraining (`RETRAIN=true make train`): bring imported data sources up to
date, so the schedule trains on the latest data and not only on what the commit points at.

A `.dvc` file with `deps` is an import (`dvc import` of another repo's data, `dvc import-url` of
a URL or bucket); `dvc update` fetches its newest version. Plain `dvc add` data has no source to
ask: `make setup` already pulled the version the commit names. The run's lineage then records
the data hash it trained on; the gate decides whether the new model reaches production.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError, run


def imported(root: Path) -> list[Path]:
    pointers = sorted(root.glob("data/**/*.dvc"))
    return [p for p in pointers if (yaml.safe_load(p.read_text("utf-8")) or {}).get("deps")]


def main() -> None:
    sources = imported(Path())
    if not sources:
        print("retrain: no imported data source to update; training on the data the commit names")
        return
    names = [str(path) for path in sources]
    print(f"retrain: dvc update {' '.join(names)}", flush=True)
    if subprocess.run([sys.executable, "-m", "dvc", "update", *names], check=False).returncode:
        raise ProjectError(f"retrain: `dvc update {' '.join(names)}` failed (see above)")


if __name__ == "__main__":
    run(main)
