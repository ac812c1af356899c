"""What a model was made from: git commit, branch, DVC data hashes, params and lock hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.paths import LOCK_FILE

from .commands import current_branch, head_commit, is_dirty


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_hashes(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """md5 of every data dependency DVC recorded (source code deps excluded)."""
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    hashes = {}
    for stage in lock.get("stages", {}).values():
        for dep in stage.get("deps", []):
            if dep["path"].startswith("data/") and "md5" in dep:
                hashes[dep["path"]] = dep["md5"]
    return hashes


def collect(root: Path, model_file: Path) -> dict[str, str]:
    """Tags for the MLflow run; every value is a string."""
    tags = {
        "git_commit": head_commit(root) or "unknown",
        "git_branch": current_branch(root) or "unknown",
        "git_dirty": str(is_dirty(root)).lower(),
        "params_sha256": sha256_file(root / "params.yaml"),
        "dvc_lock_sha256": sha256_file(root / LOCK_FILE),
        "model_sha256": sha256_file(model_file),
    }
    data = data_hashes(root / LOCK_FILE)
    for path, md5 in sorted(data.items()):
        tags[f"dvc_md5:{path}"] = md5
    # The raw data set's hash on its own: the one a person looks for first.
    raw = [md5 for path, md5 in data.items() if path.startswith("data/raw/")]
    tags["data_md5"] = raw[0] if len(raw) == 1 else ",".join(sorted(raw))
    return tags
