"""The sample data written from scikit-learn (deploy/sample_data.py) is the file DVC versions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.config import load_params

from deploy.sample_data import restore_sample

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_is_written_byte_for_byte_as_its_pointer_names(tmp_path: Path) -> None:
    data = Path(load_params(ROOT / "params.yaml").data.path)
    pointer = ROOT / data.with_name(data.name + ".dvc")
    [out] = yaml.safe_load(pointer.read_text())["outs"]
    target = tmp_path / data.name
    assert restore_sample(target, out["md5"])
    assert hashlib.md5(target.read_bytes(), usedforsecurity=False).hexdigest() == out["md5"]


def test_other_bytes_under_a_sample_name_are_not_written(tmp_path: Path) -> None:
    assert not restore_sample(tmp_path / "wine.csv", "0" * 32)
    assert not restore_sample(tmp_path / "mine.csv", "0" * 32)
    assert list(tmp_path.iterdir()) == []
