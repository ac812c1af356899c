"""What a reviewer sees: the merge request note of a feature branch against main, rendered from
Markdown to HTML and opened in headless Chromium. Every picture must load with a real size, the
model card must be linked, and a screenshot is kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.browser import loaded_images, markdown_page, screenshot
from helpers.gitops import bare_repo
from helpers.gitops import image as image_ref
from helpers.project import MODEL_VENV, TEMPLATE, copy_project, run

ARTIFACTS = TEMPLATE / "test-artifacts"


def git(project: Path, env: dict[str, str], *args: str) -> None:
    run(["git", *args], project, env)


@pytest.fixture(scope="module")
def note(trained_project: Path, model_env: dict[str, str], tmp_path_factory) -> Path:
    """build/report.md of a branch that changed a hyperparameter, against main in production."""
    work = tmp_path_factory.mktemp("review")
    project = copy_project(trained_project, work)
    env = {**model_env, "GITOPS_REPO": str(bare_repo(work / "gitops.git"))}
    git(project, env, "add", "--all")
    git(project, env, "commit", "--quiet", "--allow-empty", "-m", "trained")
    deploy = [
        str(MODEL_VENV / "bin" / "python"),
        "-m",
        "deploy.gitops",
        "deploy",
        "--image",
        image_ref(1),
    ]
    run(deploy, project, {**env, "PYTHONPATH": f"{project / 'src'}:{project}"})
    git(project, env, "checkout", "--quiet", "-b", "feat/smaller-C")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.05"))
    run(["make", "train"], project, env)
    run(["make", "report"], project, env)
    return project / "build" / "report.md"


@pytest.mark.slow
def test_the_note_shows_its_pictures_in_a_browser(note: Path) -> None:
    markdown = note.read_text(encoding="utf-8")
    page = note.with_suffix(".html")  # beside report.md: the note's links are relative to it
    page.write_text(markdown_page(markdown, "merge request note"), encoding="utf-8")

    images = loaded_images(page)
    sources = [image["src"] for image in images]
    assert sources == ["report/roc.png", "report/confusion_matrix.png", "report/importances.png"]
    for image in images:
        assert image["width"] > 0 and image["height"] > 0, f"{image['src']} did not load"
    assert "This change beside the target branch `main`." in markdown
    assert "[model_card.md](model_card.md)" in markdown
    card = (note.parent / "model_card.md").read_text(encoding="utf-8")
    assert card.startswith("# Model card: ") and "champion (production, version 1)" in card

    shot = ARTIFACTS / "review" / "report-note.png"
    width, height = screenshot(page, shot, 980, 2400)
    assert (width, height) == (980, 2400) and shot.stat().st_size > 50_000
