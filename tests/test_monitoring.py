"""Operating a trained model: `make drift` against its training split (the report opened in
headless Chromium) and `make score` over a file, with their one-line refusals."""

from __future__ import annotations

import csv
import html
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers.browser import dom_and_console
from helpers.project import copy_project

pytestmark = pytest.mark.slow
SET_PRODUCTION_ALIAS = (
    "import sys, mlflow; "
    "mlflow.MlflowClient(sys.argv[1]).set_registered_model_alias(sys.argv[2], 'production', sys.argv[3])"
)


@pytest.fixture(scope="module")
def project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(trained_project, tmp_path_factory.mktemp("monitoring"))


def make(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=project,
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )


def shifted(project: Path, target: Path, factor: float) -> list[str]:
    """The test split with every numeric feature scaled by `factor`; returns the feature names."""
    schema = json.loads((project / "data/prepared/schema.json").read_text(encoding="utf-8"))
    names = [f["name"] for f in schema["features"]]
    rows = pd.read_parquet(project / "data/prepared/test.parquet").to_dict("records")
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({name: float(row[name]) * factor for name in names})
    return names


def error_line(result: subprocess.CompletedProcess) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_drift_passes_on_the_test_split_and_fails_on_a_shifted_sample(
    project: Path, model_env: dict[str, str], tmp_path: Path
) -> None:
    shifted(project, tmp_path / "same.csv", 1.0)
    same = make(project, model_env, "drift", f"INPUT={tmp_path / 'same.csv'}")
    assert same.returncode == 0, same.stderr[-2000:]
    assert "no drift" in same.stdout

    names = shifted(project, tmp_path / "shifted.csv", 1.5)
    drifted = make(project, model_env, "drift", f"INPUT={tmp_path / 'shifted.csv'}")
    assert drifted.returncode != 0
    assert "drift past the thresholds in params.yaml" in error_line(drifted)
    summary = json.loads((project / "build/drift.json").read_text(encoding="utf-8"))
    assert list(summary["features"]) == names
    assert all(isinstance(f["drift"], bool) for f in summary["features"].values())
    assert summary["drift"] and summary["drifted_share"] > 0.3

    dom, console = dom_and_console(project / "build/drift.html")
    assert console == []
    for name in names:
        assert f'data-feature="{html.escape(name)}"' in dom, name
    assert "Drift report: DRIFT" in dom


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ('{"features": {"age": 1, "city": "x"}, "prediction": "yes"}\n', "is it another model's"),
        ("a,b\n1,2\n", "is it another model's"),
    ],
)
def test_drift_refuses_empty_or_foreign_input_in_one_line(
    project: Path, model_env: dict[str, str], tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / ("log.jsonl" if content.startswith("{") else "in.csv")
    source.write_text(content, encoding="utf-8")
    result = make(project, model_env, "drift", f"INPUT={source}")
    assert result.returncode != 0
    assert message in error_line(result) and str(source) in error_line(result)


def test_score_carries_the_model_version_and_refuses_a_missing_column(
    project: Path, model_env: dict[str, str], tmp_path: Path
) -> None:
    names = shifted(project, tmp_path / "in.csv", 1.0)
    output = tmp_path / "out.csv"
    result = make(project, model_env, "score", f"INPUT={tmp_path / 'in.csv'}", f"OUTPUT={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    lineage = json.loads((project / "build/lineage.json").read_text(encoding="utf-8"))
    with output.open(encoding="utf-8") as scored:
        rows = list(csv.DictReader(scored))
    assert len(rows) == len(pd.read_parquet(project / "data/prepared/test.parquet"))
    assert {r["model_version"] for r in rows} == {lineage["model_version"]}
    assert {r["mlflow_run_id"] for r in rows} == {lineage["mlflow_run_id"]}

    lines = (tmp_path / "in.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "bad.csv").write_text(
        "\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n", encoding="utf-8"
    )
    refused = make(project, model_env, "score", f"INPUT={tmp_path / 'bad.csv'}", "OUTPUT=x.csv")
    assert refused.returncode != 0
    assert f"missing column(s) {names[0]!r}" in error_line(refused)
    assert not (project / "x.csv").exists()


def test_drift_of_an_environment_finds_its_training_data_through_lineage(
    project: Path, model_env: dict[str, str], tmp_path: Path
) -> None:
    lineage = json.loads((project / "build/lineage.json").read_text(encoding="utf-8"))
    python = Path(model_env["UV_PROJECT_ENVIRONMENT"]) / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-c",
            SET_PRODUCTION_ALIAS,
            lineage["mlflow_tracking_uri"],
            lineage["model_name"],
            lineage["model_version"],
        ],
        cwd=project,
        env=model_env,
        check=True,
    )
    shifted(project, tmp_path / "shifted.csv", 1.5)
    result = make(
        project, model_env, "drift", f"INPUT={tmp_path / 'shifted.csv'}", "ENV=production"
    )
    assert result.returncode != 0 and "drift past the thresholds" in error_line(result)
    summary = json.loads((project / "build/drift.json").read_text(encoding="utf-8"))
    assert summary["mlflow_run_id"] == lineage["mlflow_run_id"]
    assert summary["reference"].startswith(
        f"data/prepared/train.parquet of run {lineage['mlflow_run_id']}"
    )
