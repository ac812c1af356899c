"""Batch scoring: chunked predictions equal to one in-memory predict, lineage on every row, and
bad input named by row number with no output file left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AGE_CITY_SCHEMA
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from {{ cookiecutter.__package }}.serving import batch
from {{ cookiecutter.__package }}.serving.batch import BatchError, ScoringModel


@pytest.fixture(scope="module")
def scoring() -> ScoringModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"age": rng.normal(40, 10, 200), "city": rng.choice(["lyon", "paris"], 200).astype(object)}
    )
    encode = ColumnTransformer(
        [("c", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, frame["age"] > 40)
    return ScoringModel(model, AGE_CITY_SCHEMA, "7", "run123", "test model")


def sample(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id": np.arange(rows),  # an extra column is ignored
            "age": rng.normal(40, 10, rows).round(3),
            "city": rng.choice(["lyon", "paris", "nice"], rows),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_score_like_one_predict(
    scoring: ScoringModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setattr(batch, "CHUNK_ROWS", 7)
    data = sample(50)
    source, output = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    data.to_csv(source, index=False) if suffix == ".csv" else data.to_parquet(source)
    seen: list[int] = []
    assert batch.score(scoring, source, output, progress=seen.append) == 50
    assert seen == [7] * 7 + [1]
    got = pd.read_csv(output) if suffix == ".csv" else pd.read_parquet(output)
    expected = scoring.model.predict_proba(data[["age", "city"]])
    np.testing.assert_allclose(got["proba_True"], expected[:, 1])
    assert set(got["model_version"].astype(str)) == {"7"}
    assert set(got["mlflow_run_id"]) == {"run123"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, output.name])


def test_wrong_types_are_reported_by_row_and_nothing_is_written(
    scoring: ScoringModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CHUNK_ROWS", 10)
    data = sample(40).astype({"age": object})
    data.loc[[3, 25], "age"] = ["old", "1,5"]  # in two different chunks
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    data.to_csv(source, index=False)
    with pytest.raises(BatchError, match=r"2 row\(s\).*rows 4, 26 .*column 'age', value 'old'"):
        batch.score(scoring, source, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,age\n1,3\n", "missing column\\(s\\) 'city'"),
        ("", "the file is empty"),
        ("age,city\n", "no data rows"),
    ],
)
def test_bad_files_fail_with_one_line(
    scoring: ScoringModel, tmp_path: Path, content: str, message: str
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(content, encoding="utf-8")
    with pytest.raises(BatchError, match=message):
        batch.score(scoring, source, output)
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_destination_in_no_directory_fails_before_scoring(
    scoring: ScoringModel, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    sample(3).to_csv(source, index=False)
    with pytest.raises(BatchError, match="directory .*nowhere does not exist"):
        batch.score(scoring, source, tmp_path / "nowhere" / "out.csv")
    with pytest.raises(BatchError, match=r"unsupported file type '\.json'"):
        batch.score(scoring, source, tmp_path / "out.json")


def test_csv_has_the_same_values_with_pyarrow_and_without(
    scoring: ScoringModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model image has no pyarrow: its CronJob writes with pandas, `make score` with pyarrow.
    source = tmp_path / "in.csv"
    sample(30).to_csv(source, index=False)
    batch.score(scoring, source, tmp_path / "arrow.csv")
    monkeypatch.setattr(batch, "HAS_PYARROW", False)
    batch.score(scoring, source, tmp_path / "pandas.csv")
    with pytest.raises(BatchError, match="Parquet needs pyarrow"):
        batch.score(scoring, source, tmp_path / "out.parquet")
    arrow, plain = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("arrow", "pandas"))
    pd.testing.assert_frame_equal(arrow, plain, check_exact=True)
