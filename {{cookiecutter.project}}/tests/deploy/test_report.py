"""The merge request report (deploy/report.py): its tables and sections, and what it says when
there is nothing to compare with or a plot is broken. Posting it: test_forge.py."""

from __future__ import annotations

from deploy import report
from deploy.artifacts import ImageRecord, ReproduceRecord
from deploy.forge import Files
from deploy.plots import Picture, Pictures


def test_tables_defuse_markdown():
    diff = {"metrics.json": {"a|b": {"old": 0.5, "new": 0.75, "diff": 0.25}}}
    table = report.diff_table(diff, ("metric", "target", "this change", "diff"), "main")
    assert "a\\|b" in table and "+0.25" in table
    assert report.diff_table({}, ("m", "t", "n", "d"), "main") == "_No changes._\n"
    assert "could not read" in report.diff_table(None, ("m", "t", "n", "d"), "main")


def test_reproduce_verdict_and_image_reference():
    passed = ReproduceRecord(commit="c", tolerance=0.0, strict=True, verdict="pass", failures=[])
    assert "PASS" in report.reproduce_section(passed)
    assert "Not checked" in report.reproduce_section(None)
    image = ImageRecord(repository="r/x", tag="abc", digest="sha256:00")
    assert image.reference == "r/x:abc@sha256:00"
    assert ImageRecord(repository="r/x", tag="abc", digest="").reference == "r/x:abc"


def test_an_unreadable_record_is_named_not_fatal(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "image.json").write_text('{"reference": "old format"}')
    record, problem = report.readable(ImageRecord, tmp_path)
    assert record is None and "build/image.json" in problem and "make image" in problem


def facts(**changes) -> report.Facts:
    base = dict(
        project="model",
        env="feat-x-1234abcd",
        preview="http://model-feat-x-1234abcd.preview.localhost/",
        commit="0123456789ab",
        target="main",
        target_found=True,
        metrics={},
        params={},
        pictures=Pictures([Picture("ROC curve", "roc.png")], [], compared=True),
        card=True,
        run="run-url",
        image="_not built_",
        reproduced=None,
    )
    return report.Facts(**{**base, **changes})


BESIDE = Files({"roc.png": "report/roc.png", "model_card.md": "model_card.md"})


def test_the_note_shows_the_pictures_and_links_the_model_card() -> None:
    body = report.render(facts(), BESIDE)
    assert "This change beside the target branch `main`." in body
    assert "![ROC curve](report/roc.png)" in body
    assert "- Model card: [model_card.md](model_card.md)" in body
    assert "http://model-feat-x-1234abcd.preview.localhost/model-card" in body


def test_without_a_target_or_its_plots_the_note_says_so() -> None:
    alone = report.render(facts(target_found=False, metrics=None, params=None), BESIDE)
    assert "_No target branch `main` to compare with: this change's plots alone._" in alone
    assert "![ROC curve](report/roc.png)" in alone
    pictures = Pictures([Picture("ROC curve", "roc.png")], [], compared=False)
    no_plots = report.render(facts(pictures=pictures), BESIDE)
    assert "_The target branch `main` has no plots: this change's plots alone._" in no_plots


def test_a_broken_plot_is_named_and_pictures_elsewhere_are_listed() -> None:
    broken = Pictures([], ["`metrics/plots/roc.csv`: not a readable CSV (x)"], compared=False)
    body = report.render(facts(pictures=broken), BESIDE)
    assert "- ⚠️ `metrics/plots/roc.csv`: not a readable CSV (x)" in body
    assert "_No plots to show._" in body
    github = Files({}, "in the artifact `report` of [this workflow run](https://x/runs/1)")
    body = report.render(facts(), github)
    assert (
        "Pictures in the artifact `report` of [this workflow run](https://x/runs/1): `roc.png` (ROC curve)."
        in body
    )
    assert "`model_card.md` in the artifact `report`" in body
