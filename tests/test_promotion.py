"""Production promotion on a trained project: the champion (the registry's `production`
version) is re-scored on the challenger's test split, the registry follows the GitOps repo, and a
rollback brings values, gate record and alias back together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.gitops import bare_repo, image, read_gate, read_values
from helpers.project import MODEL_VENV, copy_project, run

pytestmark = pytest.mark.slow

PYTHON = str(MODEL_VENV / "bin" / "python")
ALIAS = """
import json, mlflow
client = mlflow.MlflowClient("sqlite:///mlflow.db")
aliases = client.get_registered_model("breast-cancer-classifier").aliases
print(json.dumps({alias: str(version) for alias, version in aliases.items()}))
"""


def retrain(project: Path, env: dict[str, str], c: str) -> None:
    params = project / "params.yaml"
    text = params.read_text()
    current = next(line for line in text.splitlines() if line.strip().startswith("C:"))
    params.write_text(text.replace(current, f"    C: {c}"))
    run(["git", "commit", "--quiet", "-am", f"C={c}"], project, env)
    run(["make", "train"], project, env)


def deploy(project: Path, env: dict[str, str], n: int, check: bool = True):
    command = [PYTHON, "-m", "deploy.gitops", "deploy", "--image", image(n)]
    return run(command, project, env, check=check)


def aliases(project: Path, env: dict[str, str]) -> dict[str, str]:
    return json.loads(run([PYTHON, "-c", ALIAS], project, env).stdout)


def test_champion_and_challenger_on_the_same_rows(trained_project, model_env, tmp_path):
    project = copy_project(trained_project, tmp_path)
    repo = bare_repo(tmp_path / "gitops.git")
    env = {
        **model_env,
        "GITOPS_REPO": str(repo),
        "PYTHONPATH": f"{project / 'src'}:{project}",
    }
    run(["git", "add", "--all"], project, env)
    run(["git", "commit", "--quiet", "--allow-empty", "-m", "trained"], project, env)

    first = deploy(project, env, 1)
    assert "no production model yet: PASS" in first.stdout
    assert aliases(project, env) == {"production": "1"}

    # A much worse model on the default branch: both models scored on its test split.
    retrain(project, env, "0.00001")
    refused = deploy(project, env, 2, check=False)
    assert refused.returncode == 1
    assert "production v1 scores 0.9" in refused.stdout
    assert "on the same 114 rows" in refused.stdout and "FAIL" in refused.stderr
    assert read_values(repo, "production")["lineage"]["modelVersion"] == "1"
    assert aliases(project, env) == {"production": "1"}  # nothing moved

    # A model as good as production's: promoted, with both scores in the record.
    retrain(project, env, "1.0")
    promoted = deploy(project, env, 3)
    assert "this change scores" in promoted.stdout and "PASS" in promoted.stdout
    record = read_gate(repo)
    comparison = record["comparison"]
    assert comparison["rows"] == 114 and comparison["champion"]["modelVersion"] == "1"
    assert set(comparison["champion"]["scores"]) == set(comparison["challenger"]["scores"])
    assert record["modelVersion"] == read_values(repo, "production")["lineage"]["modelVersion"]
    assert aliases(project, env) == {"production": record["modelVersion"]}

    # Rolled back: values, gate record and alias are the first deploy's again.
    rollback = [PYTHON, "-m", "deploy.gitops", "rollback", "--reason", "latency"]
    run(rollback, project, env)
    assert read_values(repo, "production")["lineage"]["modelVersion"] == "1"
    assert read_gate(repo)["modelVersion"] == "1"
    assert aliases(project, env) == {"production": "1"}
