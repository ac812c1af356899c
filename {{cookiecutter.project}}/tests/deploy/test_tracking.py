"""MLflow logging against a temporary tracking store: params, metrics, lineage tags, registry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_workspace

from {{ cookiecutter.__package }} import evaluate, prepare, train
from {{ cookiecutter.__package }}.errors import ProjectError

from deploy import model_card, track
from deploy.artifacts import ModelCardRecord, TrainRecord


@pytest.fixture
def tracked_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny trained project in its own git repo, with a temporary sqlite tracking store."""
    write_workspace(tmp_path, "classification")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    prepare.main()
    train.main()
    evaluate.main()
    lock = {"stages": {"prepare": {"deps": [{"path": "data/raw/tiny.csv", "md5": "0" * 32}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for command in (["init", "-q", "-b", "main"], ["add", "params.yaml", "dvc.lock"]):
        subprocess.run(["git", *command], check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], check=True
    )
    monkeypatch.setenv("DEPLOY_BRANCH", "feature/tiny")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_train_logs_run_and_registers_a_version(tracked_workspace: Path, capsys) -> None:
    from mlflow import MlflowClient

    track.main()
    record = TrainRecord.require(tracked_workspace)
    client = MlflowClient()
    run = client.get_run(record.mlflow_run_id)
    assert run.data.params["train.model"] == "logistic_regression"
    assert run.data.metrics["accuracy"] == record.metrics["accuracy"]
    assert run.data.tags["git_branch"] == "feature/tiny"
    assert run.data.tags["dvc_md5:data/raw/tiny.csv"] == "0" * 32
    assert len(run.data.tags["git_commit"]) == 40
    version = client.get_model_version(record.model_name, record.model_version)
    assert version.run_id == record.mlflow_run_id
    # The environment's alias: set by the deploy that puts this version there, not by training.
    assert record.model_alias.startswith("env-feature-tiny") and version.aliases == []

    card = (tracked_workspace / model_card.CARD_FILE).read_text(encoding="utf-8")
    assert card.startswith(f"# Model card: {record.model_name} version {record.model_version}")
    assert "| rows | 60 train, 20 test |" in card and "_No champion to compare with" in card
    logged = Path(client.download_artifacts(record.mlflow_run_id, "model_card.md"))
    assert logged.read_text(encoding="utf-8") == card

    track.main()  # nothing changed: no second run
    assert "unchanged" in capsys.readouterr().out
    experiment = client.get_experiment_by_name(record.model_name)
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_the_card_puts_the_champion_beside_the_new_model(tracked_workspace: Path) -> None:
    from mlflow import MlflowClient

    track.main()
    first = TrainRecord.require(tracked_workspace)
    MlflowClient().set_registered_model_alias(first.model_name, "production", first.model_version)
    params = tracked_workspace / "params.yaml"
    params.write_text(
        params.read_text().replace("hyperparameters: {}", "hyperparameters: {C: 0.1}")
    )
    train.main()
    evaluate.main()
    track.main()
    card = ModelCardRecord.require(tracked_workspace)
    assert card.champion["model_version"] == first.model_version
    assert card.champion["metrics"]["accuracy"] == first.metrics["accuracy"]
    text = (tracked_workspace / model_card.CARD_FILE).read_text(encoding="utf-8")
    assert f"champion (production, version {first.model_version})" in text
    assert "| hyperparameters | `C=0.1` |" in text


def test_tracking_without_the_pipeline_lock_names_it(tracked_workspace: Path) -> None:
    (tracked_workspace / "dvc.lock").unlink()
    with pytest.raises(ProjectError, match=r"^dvc.lock: not found; run `make train`"):
        track.main()
    assert not (tracked_workspace / "mlflow.db").exists()
