"""The DVC stages on a tiny CSV: schema, training, evaluation, and the errors users will meet."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_frame, write_workspace
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC

from {{ cookiecutter.__package }} import evaluate, features, prepare, train
from {{ cookiecutter.__package }}.config import DataParams, load_params
from {{ cookiecutter.__package }}.errors import ProjectError
from {{ cookiecutter.__package }}.model import ESTIMATORS
from {{ cookiecutter.__package }}.paths import METRICS_FILE, MODEL_FILE, SCHEMA_FILE


def run_stages() -> None:
    prepare.main()
    train.main()
    evaluate.main()


def test_schema_describes_numeric_and_categorical_columns(workspace: Path) -> None:
    prepare.main()
    schema = json.loads(SCHEMA_FILE.read_text())
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds == {"age": "numeric", "income k$": "numeric", "city": "categorical"}
    city = next(f for f in schema["features"] if f["name"] == "city")
    assert city["categories"] == ["lyon", "nice", "paris"]
    assert schema["target"] == "label"


@pytest.mark.parametrize("labels", [["yes", "no", "maybe"], [3, 1, 2]])
def test_the_split_is_sklearns_stratified_split_on_the_labels(labels: list) -> None:
    # prepare stratifies on the labels' sorted codes: the rows must be those of the labels' split.
    frame = pd.DataFrame({"x": range(90), "label": (labels * 30)[::-1]})
    params = DataParams(path="x.csv", target="label", task="classification", test_size=0.3)
    train_rows, test_rows = prepare.split_rows(frame, params)
    train, test = train_test_split(
        frame, test_size=0.3, random_state=params.seed, stratify=frame["label"]
    )
    assert train_rows.tolist() == sorted(train.index) and test_rows.tolist() == sorted(test.index)


def test_training_learns_the_signal(workspace: Path) -> None:
    run_stages()
    scores = json.loads(METRICS_FILE.read_text())
    params = load_params()
    assert scores[params.evaluate.primary_metric] > 0.6
    model = pickle.loads(MODEL_FILE.read_bytes())
    row = pd.DataFrame([{"age": None, "income k$": 80.0, "city": "unknown-city"}])
    row = row.astype({"age": float, "city": object})
    assert len(model.predict(row)) == 1  # missing value and unseen category are handled


def test_training_twice_gives_identical_model_bytes(workspace: Path) -> None:
    run_stages()
    first = MODEL_FILE.read_bytes()
    MODEL_FILE.unlink()
    train.main()
    assert MODEL_FILE.read_bytes() == first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / "data/raw/tiny.csv").write_text(""), "the file is empty"),
        (
            lambda root: (
                tiny_frame("classification")
                .drop(columns="label")
                .to_csv(root / "data/raw/tiny.csv", index=False)
            ),
            "column 'label' (from params.yaml data) is not in the CSV",
        ),
        (
            lambda root: (
                tiny_frame("classification")
                .assign(label="yes")
                .to_csv(root / "data/raw/tiny.csv", index=False)
            ),
            "has a single class",
        ),
    ],
    ids=["empty-csv", "no-target-column", "one-class"],
)
def test_bad_data_stops_with_the_file_and_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change, message: str
) -> None:
    write_workspace(tmp_path, "classification")
    change(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match="data/raw/tiny.csv") as error:
        prepare.main()
    assert message in str(error.value)
    assert not Path("data/prepared").exists()


def deep_bad_row(root: Path, line: str) -> None:
    """A CSV whose line 12,002 is `line`: past the rows the column types are inferred from."""
    rows = tiny_frame("classification", rows=12_500).to_csv(index=False).splitlines(True)
    rows.insert(12_001, line)
    (root / "data/raw/tiny.csv").write_text("".join(rows))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("41.0,not a number,paris,yes\n", "line 12002, column 'income k$': 'not a number' is"),
        ('41.0,50.5,"paris,yes\n', "line 12002: 3 fields where the header has 4 (a quote opened"),
    ],
    ids=["text-in-numeric-column", "open-quote"],
)
def test_a_malformed_row_deep_in_the_csv_is_named_by_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    write_workspace(tmp_path, "classification")
    deep_bad_row(tmp_path, line)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match="data/raw/tiny.csv: not a readable CSV: ") as error:
        prepare.main()
    assert message in str(error.value)
    assert not Path("data/prepared").exists()


def test_params_typo_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = write_workspace(tmp_path, "classification")
    params["train"]["modle"] = params["train"].pop("model")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match=r"params.yaml: train.modle: unknown key"):
        load_params()


def test_unknown_hyperparameter_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_workspace(tmp_path, "classification", train={"hyperparameters": {"depth": 3}})
    monkeypatch.chdir(tmp_path)
    prepare.main()
    with pytest.raises(ProjectError, match="train.hyperparameters.depth"):
        train.main()
    assert not MODEL_FILE.exists()


def test_derived_features_are_computed_by_the_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example: one line in features.py, and the model computes the column."""
    monkeypatch.setitem(features.DERIVED, "income per year", lambda f: f["income k$"] / f["age"])
    run_stages()
    model = pickle.loads(MODEL_FILE.read_bytes())
    assert model.steps[0][0] == "features"
    numeric = model.named_steps["preprocess"].transformers_[0][2]
    assert "income per year" in numeric
    # The input stays the raw columns: the API does not change.
    row = pd.DataFrame([{"age": 40.0, "income k$": 80.0, "city": "paris"}]).astype({"city": object})
    assert len(model.predict(row)) == 1


def test_a_classifier_without_probabilities_is_refused_at_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ESTIMATORS["classification"], "linear_svc", lambda seed, n: LinearSVC())
    write_workspace(tmp_path, "classification", train={"model": "linear_svc"})
    monkeypatch.chdir(tmp_path)
    prepare.main()
    with pytest.raises(ProjectError, match="'linear_svc' has no predict_proba"):
        train.main()
    assert not MODEL_FILE.exists()


def test_a_regressor_is_refused_for_classification(tmp_path, monkeypatch) -> None:
    write_workspace(tmp_path, "classification", train={"model": "ridge"})
    monkeypatch.chdir(tmp_path)
    prepare.main()
    with pytest.raises(ProjectError, match="'ridge' is not a classification model"):
        train.main()


def test_a_hyperparameter_yaml_reads_as_text_is_named_with_the_fix(tmp_path, monkeypatch) -> None:
    write_workspace(tmp_path, "classification", train={"hyperparameters": {"C": "1e-05"}})
    monkeypatch.chdir(tmp_path)
    prepare.main()
    with pytest.raises(ProjectError, match=r"train.hyperparameters: The 'C' parameter") as error:
        train.main()
    assert "'1e-05' is text in YAML; write it as 1.0e-05" in str(error.value)
    assert not MODEL_FILE.exists()
