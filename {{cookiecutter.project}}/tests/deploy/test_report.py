"""The merge request report: rendering (deploy/report.py) and posting one sticky note
(deploy/forge.py), with no network."""

from __future__ import annotations

import io
import urllib.error

import pytest

from deploy import forge, report
from deploy.artifacts import ImageRecord, ReproduceRecord

CI_VARS = (
    "CI",
    "GITLAB_CI",
    "GITHUB_ACTIONS",
    "CI_MERGE_REQUEST_IID",
    "CI_PROJECT_ID",
    "CI_MERGE_REQUEST_SOURCE_PROJECT_ID",
    "CI_API_V4_URL",
    "REPORT_TOKEN",
    "PR_NUMBER",
    "PR_HEAD_REPO",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
)


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    for var in CI_VARS:
        monkeypatch.delenv(var, raising=False)


class FakeApi:
    """Records calls; answers GET with the given notes."""

    def __init__(self, notes, fail_update=None):
        self.notes, self.fail_update, self.calls = notes, fail_update, []

    def __call__(self, method, url, headers, body):
        self.calls.append((method, url, body))
        if method == "GET":
            return self.notes if "page=1" in url else []
        if method in ("PUT", "PATCH") and self.fail_update:
            raise urllib.error.HTTPError(url, self.fail_update, "no", {}, io.BytesIO())
        return {}


def gitlab_mr(monkeypatch, source_project="7"):
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_API_V4_URL", "https://gitlab.example/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "7")
    monkeypatch.setenv("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", source_project)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "3")
    monkeypatch.setenv("REPORT_TOKEN", "secret")


def test_gitlab_updates_the_note_with_the_marker(monkeypatch):
    gitlab_mr(monkeypatch)
    api = FakeApi([{"id": 1, "body": "hello"}, {"id": 9, "body": f"{forge.MARKER}\nold"}])
    assert forge.post("new", api) == "report: note updated"
    method, url, body = api.calls[-1]
    assert (method, url, body) == (
        "PUT",
        "https://gitlab.example/api/v4/projects/7/merge_requests/3/notes/9",
        {"body": "new"},
    )


def test_github_creates_a_comment_when_none_has_the_marker(monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "org/model")
    monkeypatch.setenv("PR_HEAD_REPO", "org/model")
    monkeypatch.setenv("PR_NUMBER", "12")
    monkeypatch.setenv("GITHUB_TOKEN", "secret")
    api = FakeApi([{"id": 1, "body": "unrelated"}])
    assert forge.post("new", api) == "report: note created"
    assert api.calls[-1] == (
        "POST",
        "https://api.github.com/repos/org/model/issues/12/comments",
        {"body": "new"},
    )


def test_someone_elses_marked_note_is_not_ours(monkeypatch):
    gitlab_mr(monkeypatch)
    api = FakeApi([{"id": 9, "body": forge.MARKER}], fail_update=403)
    assert forge.post("new", api) == "report: note created"


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda mp: None, "not in CI"),
        (lambda mp: gitlab_mr(mp, source_project="99"), "fork"),
        (lambda mp: (gitlab_mr(mp), mp.delenv("REPORT_TOKEN")), "REPORT_TOKEN"),
        (lambda mp: (gitlab_mr(mp), mp.delenv("CI_MERGE_REQUEST_IID")), "not a merge request"),
    ],
)
def test_never_posts_outside_a_same_project_merge_request(monkeypatch, setup, reason):
    setup(monkeypatch)
    api = FakeApi([])
    assert reason in forge.post("body", api)
    assert api.calls == []


def test_tokens_travel_over_https_only():
    with pytest.raises(ValueError, match="non-https"):
        forge.http_json("GET", "http://gitlab.example/api", {"PRIVATE-TOKEN": "x"}, None)


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
