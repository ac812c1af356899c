"""The model card (deploy/model_card.py): what it says, and what it says only of its own model."""

from __future__ import annotations

from pathlib import Path

from deploy import model_card
from deploy.artifacts import ImageRecord, ModelCardRecord, ReproduceRecord, TrainRecord

CARD = ModelCardRecord(
    mlflow_run_id="run-2",
    data_source="data/raw/x.csv",
    data_md5="0" * 32,
    task="classification",
    target="label",
    features=["age", "income | k$"],
    rows={"train": 60, "test": 20},
    target_balance={"no": 50.0, "yes": 30.0},
    estimator="logistic_regression",
    estimator_class="LogisticRegression",
    hyperparameters={"C": 0.5},
    seed=42,
    split_seed=7,
    primary_metric="accuracy",
    metrics={"accuracy": 0.9, "log_loss": 0.25},
    champion={"model_version": "1", "mlflow_run_id": "run-1", "metrics": {"accuracy": 0.85}},
)
TRAINED = TrainRecord(
    model_name="model",
    model_version="2",
    model_alias="env-feat-x",
    mlflow_run_id="run-2",
    git_commit="c" * 40,
    git_branch="feat/x",
    data_md5="0" * 32,
    mlflow_tracking_uri="sqlite:///mlflow.db",
    experiment_id="1",
    run_url="http://mlflow.example/#/experiments/1/runs/run-2",
    metrics={"accuracy": 0.9},
    identity={"model_sha256": "m" * 64},
)
CHECKED = ReproduceRecord(
    commit="d" * 40,  # trained before the commit: the model file decides
    tolerance=0.0,
    strict=True,
    verdict="pass",
    failures=[],
    model_sha256="m" * 64,
)
IMAGE = ImageRecord(
    repository="r/model", tag="cccccccc", digest="sha256:" + "1" * 64, mlflow_run_id="run-2"
)


def test_the_card_holds_data_training_metrics_verdict_lineage_and_the_teams_words() -> None:
    text = model_card.render(CARD, TRAINED, CHECKED, IMAGE, "## Intended use\n\nTriage only.\n")
    assert text.startswith("# Model card: model version 2\n")
    for expected in (
        "| source | `data/raw/x.csv` |",
        "| DVC hash (md5) | `" + "0" * 32 + "` |",
        "| rows | 60 train, 20 test |",
        "`income \\| k$`",  # a cell never breaks its table
        "| target balance | `no` 50 (62.5%), `yes` 30 (37.5%) |",
        "| estimator | `logistic_regression` (LogisticRegression) |",
        "| hyperparameters | `C=0.5` |",
        "| seed | 42 (train/test split: 7) |",
        "| metric (test split) | this version | champion (production, version 1) |",
        "| `accuracy` | 0.9 | 0.85 |",
        "| `log_loss` | 0.25 | – |",
        "✅ **PASS**",
        "| git commit | `" + "c" * 40 + "` |",
        "| MLflow run | http://mlflow.example/#/experiments/1/runs/run-2 |",
        "(alias `env-feat-x`)",
        "| image | `r/model:cccccccc@sha256:" + "1" * 64 + "` |",
        "## Intended use\n\nTriage only.",
    ):
        assert expected in text, expected


def test_records_of_another_model_are_not_quoted() -> None:
    """A verdict on another model file, an image of another run: the card says not yet."""
    other_commit = ReproduceRecord(
        commit="c" * 40, tolerance=0.0, strict=True, verdict="pass", failures=[], model_sha256="x"
    )
    other_image = ImageRecord(
        repository="r/model", tag="x", digest="sha256:2", mlflow_run_id="run-1"
    )
    no_champion = ModelCardRecord(**{**CARD.__dict__, "champion": None})
    text = model_card.render(
        no_champion, TRAINED, other_commit, other_image, model_card.TEAM_PLACEHOLDER
    )
    assert "_Not checked yet (`make reproduce`)._" in text
    assert "| image | _not built yet (`make image`)_ |" in text
    assert "_No champion to compare with" in text
    assert "_For the team to fill in (docs/model-use.md)._" in text


def test_a_regression_card_describes_the_target_range() -> None:
    balance = {"mean": 150.5, "std": 75.25, "min": 25.0, "max": 346.0}
    card = ModelCardRecord(**{**CARD.__dict__, "task": "regression", "target_balance": balance})
    text = model_card.render(card, None, None, None, "")
    assert "| target balance | mean 150.5, std 75.25, range 25 to 346 |" in text
    assert text.startswith("# Model card: run-2\n")


def test_the_card_quotes_the_teams_file_without_its_comments(tmp_path: Path) -> None:
    assert model_card.render_from_records(tmp_path) is None  # before any training
    CARD.write(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / model_card.TEAM_FILE).write_text(
        "<!-- a note\nto the team -->\n## Intended use\n\nTriage only.\n", encoding="utf-8"
    )
    text = model_card.render_from_records(tmp_path)
    assert text.endswith("## Intended use\n\nTriage only.\n")
    assert "<!--" not in text
