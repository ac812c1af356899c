"""`make reproduce`, MLflow lineage tags and the DVC remote round trip, in generated projects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.project import MODEL_VENV, copy_project, run, setup_project

pytestmark = pytest.mark.slow

PACKAGE = "breast_cancer_classifier"  # the default project's package
LINEAGE_TAGS = (
    "git_commit", "git_branch", "git_dirty", "params_sha256", "dvc_lock_sha256", "model_sha256",
    "data_md5", "dvc_md5:data/raw/breast_cancer.csv",
)  # fmt: skip

# Reads the run of build/lineage.json (and its registered model) with the model venv's MLflow.
READ_RUN = """
import json
from mlflow import MlflowClient
record = json.load(open("build/lineage.json"))
client = MlflowClient(tracking_uri=record["mlflow_tracking_uri"])
run = client.get_run(record["mlflow_run_id"])
version = client.get_model_version(record["model_name"], record["model_version"])
print(json.dumps({"tags": run.data.tags, "version_run_id": version.run_id, "record": record}))
"""


def make(target: str, project: Path, env: dict[str, str], check: bool = True):
    return run(["make", target], project, env, check=check)


def read_run(project: Path, env: dict[str, str]) -> dict:
    result = run([str(MODEL_VENV / "bin" / "python"), "-c", READ_RUN], project, env)
    return json.loads(result.stdout.splitlines()[-1])


def report(project: Path) -> dict:
    return json.loads((project / "build" / "reproduce.json").read_text(encoding="utf-8"))


def commit_all(project: Path, env: dict[str, str], message: str) -> None:
    run(["git", "add", "--all"], project, env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", message], project, env)


@pytest.fixture
def project(trained_project: Path, tmp_path: Path) -> Path:
    return copy_project(trained_project, tmp_path)


def test_reproduce_passes_and_tags_the_run(project: Path, model_env: dict[str, str]) -> None:
    result = make("reproduce", project, model_env)

    assert "reproduce: PASS (max abs diff 0" in result.stdout
    for row in ("predictions proba_malignant", "metric accuracy", "model sha256"):
        assert row in result.stdout
    verdict = report(project)
    assert verdict["verdict"] == "pass" and verdict["max_abs_diff"] == 0.0
    assert verdict["failures"] == [] and len(verdict["checks"]) >= 8
    tags = read_run(project, model_env)["tags"]
    assert tags["reproducible"] == "true" and float(tags["reproduce_max_abs_diff"]) == 0.0
    assert set(LINEAGE_TAGS) <= set(tags)
    assert tags["git_branch"] == "main" and tags["git_dirty"] in ("true", "false")


def test_reproduce_fails_when_training_is_not_deterministic(
    project: Path, model_env: dict[str, str]
) -> None:
    train = project / "src" / PACKAGE / "train.py"
    source = train.read_text(encoding="utf-8")
    fit = next(
        line for line in source.splitlines() if line.strip() == "model.fit(features, target)"
    )
    indent = fit[: len(fit) - len(fit.lstrip())]
    unseeded = (
        f"{indent}noise = __import__('numpy').random.default_rng().normal(0, 1e-3, features.shape)\n"
        f"{indent}model.fit(features + noise, target)"
    )
    train.write_text(source.replace(fit, unseeded), encoding="utf-8")
    commit_all(project, model_env, "Unseeded noise in training")
    make("train", project, model_env)

    result = make("reproduce", project, model_env, check=False)

    assert result.returncode != 0
    assert "error: not reproducible:" in result.stderr
    assert "predictions proba_malignant: max abs diff" in result.stderr
    assert "model sha256:" in result.stderr
    verdict = report(project)
    assert verdict["verdict"] == "fail" and verdict["max_abs_diff"] > 0
    assert read_run(project, model_env)["tags"]["reproducible"] == "false"


def test_reproduce_refuses_data_changed_without_training(
    project: Path, model_env: dict[str, str]
) -> None:
    data = project / "data" / "raw" / "breast_cancer.csv"
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = "1" + lines[1]  # one feature value of the first row changes
    data.write_text("".join(lines), encoding="utf-8")

    result = make("reproduce", project, model_env, check=False)

    assert result.returncode != 0
    assert "does not match dvc.lock" in result.stderr and "run `make train`" in result.stderr
    assert "prepare: changed deps data/raw/breast_cancer.csv (modified)" in result.stderr
    assert report(project)["verdict"] == "fail"


def test_a_scheduled_retraining_on_an_updated_import_reproduces(
    project: Path, model_env: dict[str, str], tmp_path: Path
) -> None:
    """`RETRAIN=true make train` runs `dvc update` on an imported source; CI commits nothing, so
    `make reproduce` retrains the commit with the pointer as the update left it."""
    data = "data/raw/breast_cancer.csv"
    source = tmp_path / "source.csv"
    source.write_bytes((project / data).read_bytes())
    dvc = [str(MODEL_VENV / "bin" / "python"), "-m", "dvc"]
    run([*dvc, "remove", f"{data}.dvc"], project, model_env)
    run([*dvc, "import-url", "--quiet", "--force", str(source), data], project, model_env)
    commit_all(project, model_env, "The data is imported")
    make("train", project, model_env)
    before = json.loads((project / "build" / "lineage.json").read_text())["data_md5"]
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    source.write_text("".join(lines + lines[1:41]), encoding="utf-8")  # 40 rows arrive

    retrained = run(["make", "train"], project, {**model_env, "RETRAIN": "true"})

    assert f"retrain: dvc update {data}.dvc" in retrained.stdout
    changed = run(["git", "diff", "--name-only"], project, model_env).stdout.split()
    assert f"{data}.dvc" in changed
    assert json.loads((project / "build" / "lineage.json").read_text())["data_md5"] != before
    result = make("reproduce", project, model_env)
    assert f"with {data}.dvc as the scheduled `dvc update` left it" in result.stdout
    assert "reproduce: PASS (max abs diff 0" in result.stdout
    # Any other uncommitted input is still refused.
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
    refused = make("reproduce", project, model_env, check=False)
    assert refused.returncode != 0 and "uncommitted changes to params.yaml" in refused.stderr


def test_a_fresh_clone_restores_the_pushed_model_without_training(
    project: Path, model_env: dict[str, str]
) -> None:
    commit_all(project, model_env, "Trained model")  # dvc.lock and metrics, as a person would
    make("push", project, model_env)
    clone = project.parent / "clone"  # beside it: the relative DVC remote path resolves
    run(["git", "clone", "--quiet", str(project), str(clone)], project.parent, model_env)

    setup_project(clone, model_env)
    result = make("train", clone, model_env)

    assert "Running stage" not in result.stdout, result.stdout
    assert "Data and pipelines are up to date." in result.stdout
    for output in ("models/model.pkl", "metrics/predictions.csv", "data/prepared/train.parquet"):
        assert (clone / output).read_bytes() == (project / output).read_bytes(), output


def test_train_and_reproduce_against_an_mlflow_server(
    project: Path,
    model_env: dict[str, str],
    mlflow_server_uri: str,
) -> None:
    env = {**model_env, "MLFLOW_TRACKING_URI": mlflow_server_uri}

    make("train", project, env)
    make("reproduce", project, env)

    found = read_run(project, env)
    assert found["record"]["mlflow_tracking_uri"] == mlflow_server_uri
    assert found["record"]["run_url"].startswith(f"{mlflow_server_uri}/#/experiments/")
    assert found["tags"]["reproducible"] == "true"
    assert set(LINEAGE_TAGS) <= set(found["tags"])
    assert found["record"]["model_alias"] == "production"
    assert found["version_run_id"] == found["record"]["mlflow_run_id"]


def test_editing_a_module_marks_exactly_the_stages_that_run_it(
    project: Path, model_env: dict[str, str]
) -> None:
    """dvc.yaml lists every module each stage runs (the generated tests/test_architecture.py
    checks the list against the imports); here DVC itself must see each edit. The service and
    its machinery are in no stage: editing them retrains nothing."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    python = str(MODEL_VENV / "bin" / "python")
    package = project / "src" / PACKAGE
    for module in sorted(package.rglob("*.py")):
        name = module.relative_to(project).as_posix()
        original = module.read_text()
        module.write_text(original + "\n# an edit\n")
        status = json.loads(
            run([python, "-m", "dvc", "status", "--json"], project, model_env).stdout
        )
        module.write_text(original)
        expected = {stage for stage, spec in stages.items() if name in spec["deps"]}
        assert set(status) == expected, (name, status)
    assert run([python, "-m", "dvc", "status", "--json"], project, model_env).stdout.strip() == "{}"
