"""The comparisons of `make reproduce` (deploy/compare.py) and the checks before retraining
(the retraining itself is tested by the template)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from deploy import compare, reproduce
from deploy.commands import run_command
from deploy.compare import Check


def write_predictions(path, **columns):
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


@pytest.fixture
def predictions(tmp_path):
    """Two prediction files to compare: ours is fixed, each test writes theirs."""

    def make(**theirs):
        base = {"prediction": ["a", "b", "a"], "proba_a": [0.9, 0.2, 0.75]}
        ours = write_predictions(tmp_path / "ours.csv", **base)
        return ours, write_predictions(tmp_path / "theirs.csv", **{**base, **theirs})

    return make


def failures(checks: list[Check]) -> list[str]:
    return [c.failure for c in checks if not c.ok]


def test_identical_predictions_pass(predictions):
    checks = compare.compare_predictions(*predictions(), tolerance=0.0)
    assert [c.name for c in checks] == ["predictions prediction", "predictions proba_a"]
    assert all(c.ok for c in checks)
    assert compare.max_abs_diff(checks) == 0.0


def test_a_tiny_probability_change_fails_at_zero_tolerance(predictions):
    checks = compare.compare_predictions(*predictions(proba_a=[0.9, 0.2, 0.7500001]), 0.0)
    (failure,) = failures(checks)
    assert failure.startswith("predictions proba_a: max abs diff 1e-07 > tolerance 0")
    assert "row 2: 0.75 vs 0.7500001" in failure
    assert compare.max_abs_diff(checks) == pytest.approx(1e-7)


def test_the_tolerance_allows_small_differences(predictions):
    checks = compare.compare_predictions(*predictions(proba_a=[0.9, 0.2, 0.7500001]), 1e-6)
    assert all(c.ok for c in checks)


def test_changed_labels_fail_whatever_the_tolerance(predictions):
    checks = compare.compare_predictions(*predictions(prediction=["a", "a", "a"]), 1.0)
    assert failures(checks) == ["predictions prediction: 1 of 3 labels differ"]


def test_a_missing_value_on_one_side_is_an_infinite_difference(predictions):
    checks = compare.compare_predictions(*predictions(proba_a=[0.9, None, 0.75]), 1.0)
    assert math.isinf(compare.max_abs_diff(checks))


def test_different_rows_or_columns_fail(tmp_path):
    ours = write_predictions(tmp_path / "a.csv", prediction=[1.0, 2.0])
    theirs = write_predictions(tmp_path / "b.csv", prediction=[1.0, 2.0, 3.0])
    (check,) = compare.compare_predictions(ours, theirs, 0.0)
    assert not check.ok and "shape or columns differ (2 vs 3 rows)" in check.failure


def test_metrics_compare_every_key_within_the_tolerance():
    ours = {"accuracy": 0.9, "log_loss": 0.25}
    checks = compare.compare_metrics(ours, {"accuracy": 0.9, "log_loss": 0.2500002}, 1e-7)
    assert failures(checks) == ["metric log_loss: 0.25 vs 0.2500002, abs diff 2e-07"]
    assert all(c.ok for c in compare.compare_metrics(ours, dict(ours), 0.0))


def test_a_metric_missing_on_one_side_fails():
    checks = compare.compare_metrics({"accuracy": 0.9}, {"accuracy": 0.9, "r2": 0.5}, 0.0)
    assert failures(checks) == ["metric r2: missing in the workspace"]


def test_model_hash_is_required_equal_only_when_strict(tmp_path):
    (tmp_path / "a.pkl").write_bytes(b"model")
    (tmp_path / "b.pkl").write_bytes(b"model!")
    strict = compare.compare_model(tmp_path / "a.pkl", tmp_path / "b.pkl", strict=True)
    assert not strict.ok and strict.failure.startswith("model sha256:")
    relaxed = compare.compare_model(tmp_path / "a.pkl", tmp_path / "b.pkl", strict=False)
    assert relaxed.ok and relaxed.diff == "differs (strict off)"


def test_dvc_status_is_described_one_change_per_line():
    status = {
        "prepare": [{"changed deps": {"data/raw/x.csv": "modified"}}],
        "train": ["always changed"],
    }
    assert compare.describe_status(status) == [
        "prepare: changed deps data/raw/x.csv (modified)",
        "train: always changed",
    ]


def test_outputs_and_dvc_lock_are_not_uncommitted_inputs(tmp_path, monkeypatch):
    changed = "dvc.lock\nmetrics/metrics.json\nmetrics/plots/roc.csv\nparams.yaml\nmetrics.py\n"
    monkeypatch.setattr(reproduce, "run_command", lambda args, cwd: changed)
    outputs = ["metrics/metrics.json", "metrics/plots"]
    assert reproduce.uncommitted_inputs(tmp_path, outputs) == ["params.yaml", "metrics.py"]


def test_the_table_has_one_row_per_check_and_the_report_is_strict_json():
    checks = [Check("metric r2", "0.5", "0.6", "0.1", False, "metric r2: ...", 0.1)]
    lines = compare.table(checks).splitlines()
    assert lines[0].split() == ["check", "workspace", "reproduced", "diff", "verdict"]
    assert lines[1].split()[-1] == "FAIL"
    assert json.loads(json.dumps(reproduce.json_number(math.inf))) == "inf"


def test_the_clean_checkout_keeps_no_branch_name_dulwich_cannot_read(tmp_path):
    """git writes a quote in a branch name as `\\"` in a config section header; Dulwich (DVC's git
    library) reads a `;` or `#` after it as a comment and refuses the file. The clean checkout
    records no branch, whatever the workspace's."""
    from dulwich.repo import Repo

    work = tmp_path / "work"
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]

    def git(*args: str, cwd=work) -> str:
        return run_command(["git", *identity, *args], cwd)

    work.mkdir()
    git("init", "--quiet")
    (work / "data.txt").write_text("v1\n")
    git("add", "data.txt")
    git("commit", "--quiet", "-m", "v1")
    git("checkout", "--quiet", "-b", 'fix/6"-screen;#2')
    commit = git("rev-parse", "HEAD").strip()
    (work / "data.txt").write_text("uncommitted\n")

    checkout = tmp_path / "checkout"
    reproduce.clean_checkout(work, commit, checkout)
    Repo(str(checkout)).get_config()  # what failed: "expected trailing ]"
    assert (checkout / "data.txt").read_text() == "v1\n"
    assert git("rev-parse", "HEAD", cwd=checkout).strip() == commit
    assert git("status", "--porcelain", cwd=work).split() == ["M", "data.txt"]  # untouched
