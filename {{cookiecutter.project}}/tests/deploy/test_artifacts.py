"""The records in build/ (deploy/artifacts.py): written and read back whole, refused by name when
they are not what this toolkit writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from {{ cookiecutter.__package }}.errors import ProjectError

from deploy.artifacts import BentoRecord, ImageRecord, ReproduceRecord, TrainRecord

TRAINED = TrainRecord(
    model_name="model",
    model_version="3",
    model_alias="env-feat-x",
    mlflow_run_id="0123abcd",
    git_commit="f" * 40,
    git_branch="feat/x",
    data_md5="0" * 32,
    mlflow_tracking_uri="sqlite:///mlflow.db",
    experiment_id="1",
    run_url="sqlite:///mlflow.db (experiment 1, run 0123abcd)",
    metrics={"accuracy": 0.95},
    identity={"model_sha256": "e" * 64},
)


MODEL = {key: getattr(TRAINED, key) for key in ("model_name", "model_version", "model_alias")}
LINEAGE = {
    **MODEL,
    **{key: getattr(TRAINED, key) for key in ("mlflow_run_id", "git_commit", "git_branch")},
    "data_md5": TRAINED.data_md5,
}
RECORDS = [
    TRAINED,
    BentoRecord(
        tag="model:abc",
        path="/store/bentos/model/abc",
        bento_model="model:def",
        mlflow_tracking_uri="https://mlflow.example",
        **LINEAGE,
    ),
    ImageRecord(repository="r/model", tag="f00", digest="sha256:00", mlflow_run_id="0123abcd"),
    ReproduceRecord(commit="f00", tolerance=0.0, strict=True, verdict="pass", failures=[]),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_reads_back_as_written(tmp_path: Path, record) -> None:
    record.write(tmp_path)
    assert type(record).read(tmp_path) == record
    written = json.loads(record.location(tmp_path).read_text())
    assert not {"run_id", "mlflowRunId", "tracking_uri", "branch"} & written.keys()  # one spelling


def test_a_missing_record_is_none_or_names_the_step(tmp_path: Path) -> None:
    assert ImageRecord.read(tmp_path) is None
    with pytest.raises(ProjectError, match=r"build/image.json: not found; run `make image`"):
        ImageRecord.require(tmp_path)


@pytest.mark.parametrize(
    "text", ['{"run_id": "old spelling"}', "{not json", '{"repository": "r"}'], ids=str
)
def test_a_foreign_record_is_refused_with_its_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "image.json").write_text(text)
    with pytest.raises(ProjectError, match=r"build/image.json: not a record .* `make image`"):
        ImageRecord.read(tmp_path)
