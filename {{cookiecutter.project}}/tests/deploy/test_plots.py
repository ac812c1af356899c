"""The report's pictures (deploy/plots.py) from a tiny trained project in git: this change beside
the target branch, alone, and with plot files that are missing or malformed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from matplotlib import image

from {{ cookiecutter.__package }} import evaluate, prepare, train

from deploy import plots

EXPECTED = {
    "classification": ["roc.png", "confusion_matrix.png", "importances.png"],
    "regression": ["residuals.png", "importances.png"],
}


def git(*args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True
    )


@pytest.fixture
def trained(workspace: Path) -> tuple[Path, str]:
    """The tiny project trained and committed on main (plots included), then on a branch."""
    shutil.copy(ROOT / "dvc.yaml", workspace / "dvc.yaml")
    prepare.main()
    train.main()
    evaluate.main()
    git("init", "-q", "-b", "main")
    git("add", "params.yaml", "dvc.yaml", "metrics/plots")
    git("commit", "-qm", "trained")
    git("switch", "-qc", "feat/x")
    task = (
        "regression" if (workspace / "metrics/plots/residuals.csv").is_file() else "classification"
    )
    return workspace, task


def drawn(root: Path, result: plots.Pictures) -> list[str]:
    """The pictures' files, each checked to be an image with pixels."""
    for picture in result.pictures:
        height, width, *_ = image.imread(root / plots.PICTURES_DIR / picture.file).shape
        assert height > 100 and width > 100, picture
    return [picture.file for picture in result.pictures]


def test_this_change_beside_the_target(trained) -> None:
    root, task = trained
    result = plots.render(root, "main", "main", task)
    assert drawn(root, result) == EXPECTED[task]
    assert result.compared and result.problems == []
    assert sorted(p.name for p in (root / plots.PICTURES_DIR).iterdir()) == sorted(EXPECTED[task])


def test_without_a_target_this_change_alone(trained) -> None:
    root, task = trained
    result = plots.render(root, None, "main", task)
    assert drawn(root, result) == EXPECTED[task] and not result.compared


def test_a_target_without_plots_is_not_a_problem(trained) -> None:
    root, task = trained
    git("rm", "-rq", "--cached", "metrics/plots")
    git("commit", "-qm", "no plots")
    result = plots.render(root, "HEAD", "main", task)
    assert drawn(root, result) == EXPECTED[task]
    assert not result.compared and result.problems == []


@pytest.mark.parametrize("workspace", ["classification"], indirect=True)
def test_missing_and_malformed_plot_files_are_named_not_raised(trained) -> None:
    root, task = trained
    (root / "metrics/plots/roc.csv").write_text('fpr,tpr\n0,"unclosed\n', encoding="utf-8")
    (root / "metrics/plots/confusion_matrix.csv").unlink()
    result = plots.render(root, "main", "main", task)
    assert drawn(root, result) == ["importances.png"]
    assert result.problems == [
        "`metrics/plots/roc.csv`: not a readable CSV (Error tokenizing data. C error: EOF inside string starting at row 1)",
        "`metrics/plots/confusion_matrix.csv`: missing",
    ]
    (root / "metrics/plots/roc.csv").write_text("fpr,tpr\n0,zero\n", encoding="utf-8")
    (root / "models/model.pkl").write_bytes(b"not a pickle")
    result = plots.render(root, None, "main", task)
    assert result.pictures == []
    assert result.problems == [
        "`metrics/plots/roc.csv`: values that are not finite numbers",
        "`metrics/plots/confusion_matrix.csv`: missing",
        "`models/model.pkl`: not readable (UnpicklingError), so no feature importances",
    ]


@pytest.mark.parametrize("workspace", ["classification"], indirect=True)
def test_a_confusion_matrix_of_too_many_classes_is_refused(trained) -> None:
    root, task = trained
    rows = "".join(f"c{i},c{i}\n" for i in range(plots.MAX_CLASSES + 1))
    (root / "metrics/plots/confusion_matrix.csv").write_text("actual,predicted\n" + rows)
    result = plots.render(root, None, "main", task)
    assert drawn(root, result) == ["roc.png", "importances.png"]
    assert result.problems == [
        "`metrics/plots/confusion_matrix.csv`: 31 classes, more than the 30 a confusion matrix can show"
    ]
