"""Scheduled retraining updates imported data sources only: a `dvc add` pointer has none."""

from __future__ import annotations

from pathlib import Path

from deploy.retrain import imported


def test_only_imports_are_updated(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "added.csv.dvc").write_text("outs:\n- md5: abc\n  path: added.csv\n", encoding="utf-8")
    (raw / "imported.csv.dvc").write_text(
        "deps:\n- path: s3://bucket/latest.csv\nouts:\n- md5: def\n  path: imported.csv\n",
        encoding="utf-8",
    )
    assert imported(tmp_path) == [raw / "imported.csv.dvc"]
