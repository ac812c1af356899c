"""Posting the note (deploy/forge.py) against a local HTTP server that answers the endpoints the
toolkit calls as GitLab's and GitHub's REST APIs document them: GitLab's merge request notes
and project uploads (multipart, field `file`, PRIVATE-TOKEN), GitHub's issue comments (Bearer).
Every request is recorded and checked: method, path, auth header, body."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy import forge

TOKEN = "glpat-test-token"  # noqa: S105 - the local stand-in checks it
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # the signature is enough for an upload
GITLAB_NOTES = "/api/v4/projects/7/merge_requests/3/notes"
GITLAB_UPLOADS = "/api/v4/projects/7/uploads"
GITHUB_COMMENTS = "/repos/org/model/issues/12/comments"


class Forge(ThreadingHTTPServer):
    """Both forges' endpoints, an in-memory list of notes, and every request received."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.failing_uploads: set[str] = set()  # file names the uploads API refuses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Forge

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        self.server.requests.append(
            {"method": self.command, "path": path, "headers": self.headers, "body": body}
        )
        gitlab = path.startswith("/api/v4/")
        authorised = (
            self.headers.get("PRIVATE-TOKEN") == TOKEN
            if gitlab
            else self.headers.get("Authorization") == f"Bearer {TOKEN}"
        )
        if not authorised:
            return self.answer(401, {"message": "401 Unauthorized"})
        notes = self.server.notes
        route = (self.command, re.sub(r"/\d+$", "/:id", path))
        if route in (("GET", GITLAB_NOTES), ("GET", GITHUB_COMMENTS)):
            return self.answer(200, notes if "page=1" in self.path else [])
        if route in (("POST", GITLAB_NOTES), ("POST", GITHUB_COMMENTS)):
            notes.append({"id": len(notes) + 100, "body": json.loads(body)["body"]})
            return self.answer(201, notes[-1])
        if route in (
            ("PUT", f"{GITLAB_NOTES}/:id"),
            ("PATCH", "/repos/org/model/issues/comments/:id"),
        ):
            note = next(n for n in notes if n["id"] == int(path.rsplit("/", 1)[1]))
            if note.get("author") == "someone else":
                return self.answer(403, {"message": "403 Forbidden"})
            note["body"] = json.loads(body)["body"]
            return self.answer(200, note)
        if route == ("POST", GITLAB_UPLOADS):
            name = multipart(self.headers["Content-Type"], body)["file"][0]
            if name in self.server.failing_uploads:
                return self.answer(500, {"message": "500 Internal Server Error"})
            url = f"/uploads/{'ab' * 16}/{name}"
            return self.answer(
                201,
                {
                    "id": 5,
                    "alt": name.rsplit(".", 1)[0],
                    "url": url,
                    "full_path": f"/-/project/7{url}",
                    "markdown": f"![{name.rsplit('.', 1)[0]}]({url})",
                },
            )
        return self.answer(404, {"message": "404 Not Found"})

    do_GET = do_POST = do_PUT = do_PATCH = handle_any


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str, str, bytes]]:
    """A multipart/form-data body parsed by the standard library: field -> (filename, type, bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.get_content_type() == "multipart/form-data"
    return {
        part.get_param("name", header="content-disposition"): (
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    }


@pytest.fixture
def server() -> Iterator[Forge]:
    forge_server = Forge()
    thread = threading.Thread(target=forge_server.serve_forever, daemon=True)
    thread.start()
    yield forge_server
    forge_server.shutdown()
    forge_server.server_close()


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    (tmp_path / "roc.png").write_bytes(PNG)
    (tmp_path / "model_card.md").write_text("# Model card\n", encoding="utf-8")
    return [tmp_path / "roc.png", tmp_path / "model_card.md"]


def note(files: forge.Files) -> str:
    """A note that shows where each file ended up."""
    links = "".join(f"![{name}]({url})\n" for name, url in sorted(files.urls.items()))
    return f"{forge.MARKER}\n{links}{files.elsewhere}\n"


@pytest.fixture(autouse=True)
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "GITLAB_CI",
        "GITHUB_ACTIONS",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID",
        "GITHUB_RUN_ID",
    ):
        monkeypatch.delenv(var, raising=False)


def gitlab(monkeypatch: pytest.MonkeyPatch, server: Forge) -> None:
    for name, value in {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{server.url}/api/v4",
        "CI_PROJECT_ID": "7",
        "CI_MERGE_REQUEST_IID": "3",
        "REPORT_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)


def github(monkeypatch: pytest.MonkeyPatch, server: Forge) -> None:
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": server.url,
        "GITHUB_REPOSITORY": "org/model",
        "PR_HEAD_REPO": "org/model",
        "PR_NUMBER": "12",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": "99",
    }.items():
        monkeypatch.setenv(name, value)


def test_gitlab_uploads_every_file_then_creates_the_note(monkeypatch, server, files) -> None:
    gitlab(monkeypatch, server)
    assert forge.post(note, files) == "report: note created"
    uploads, listing, created = server.requests[:2], server.requests[2], server.requests[3]
    assert len(server.requests) == 4
    for request, path in zip(uploads, files, strict=True):
        assert (request["method"], request["path"]) == ("POST", GITLAB_UPLOADS)
        assert request["headers"]["PRIVATE-TOKEN"] == TOKEN
        assert "Authorization" not in request["headers"]
        field = multipart(request["headers"]["Content-Type"], request["body"])
        assert list(field) == ["file"]
        assert field["file"] == (
            path.name,
            "image/png" if path.suffix == ".png" else "text/markdown",
            path.read_bytes(),
        )
    assert (listing["method"], listing["path"]) == ("GET", GITLAB_NOTES)
    assert (created["method"], created["path"]) == ("POST", GITLAB_NOTES)
    assert created["headers"]["PRIVATE-TOKEN"] == TOKEN
    assert created["headers"]["Content-Type"] == "application/json"
    body = json.loads(created["body"])["body"]
    # The note links the uploads as GitLab returned them: inside the project.
    assert f"![roc.png](/uploads/{'ab' * 16}/roc.png)" in body
    assert f"![model_card.md](/uploads/{'ab' * 16}/model_card.md)" in body


def test_gitlab_updates_its_own_note(monkeypatch, server, files) -> None:
    gitlab(monkeypatch, server)
    server.notes += [{"id": 1, "body": "someone"}, {"id": 2, "body": f"{forge.MARKER}\nold"}]
    assert forge.post(note, files) == "report: note updated"
    update = server.requests[-1]
    assert (update["method"], update["path"]) == ("PUT", f"{GITLAB_NOTES}/2")
    assert "roc.png" in server.notes[1]["body"] and server.notes[0]["body"] == "someone"


def test_a_failed_upload_is_named_and_the_note_still_posts(monkeypatch, server, files) -> None:
    gitlab(monkeypatch, server)
    server.failing_uploads.add("roc.png")
    assert forge.post(note, files) == "report: note created"
    body = server.notes[-1]["body"]
    assert "not uploaded (HTTPError; the job's artifacts keep them)" in body
    assert "roc.png]" not in body
    assert "model_card.md](/uploads/" in body


def test_github_comment_names_the_run_artifact_and_uploads_nothing(
    monkeypatch, server, files
) -> None:
    github(monkeypatch, server)
    assert forge.post(note, files) == "report: note created"
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("GET", GITHUB_COMMENTS),
        ("POST", GITHUB_COMMENTS),
    ]
    for request in server.requests:
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert request["headers"]["Accept"] == "application/vnd.github+json"
    body = json.loads(server.requests[-1]["body"])["body"]
    assert "artifact `report` of [this workflow run]" in body
    assert "(https://github.example/org/model/actions/runs/99)" in body

    server.requests.clear()
    assert forge.post(note, files) == "report: note updated"
    update = server.requests[-1]
    assert (update["method"], update["path"]) == ("PATCH", "/repos/org/model/issues/comments/100")


def test_a_wrong_token_posts_nothing(monkeypatch, server, files) -> None:
    gitlab(monkeypatch, server)
    monkeypatch.setenv("REPORT_TOKEN", "wrong")
    with pytest.raises(forge.urllib.error.HTTPError):
        forge.post(note, files)  # the uploads are said in the note; the note itself fails
    assert server.notes == []


def test_someone_elses_marked_note_is_not_ours(monkeypatch, server, files) -> None:
    gitlab(monkeypatch, server)
    server.notes.append({"id": 1, "body": forge.MARKER, "author": "someone else"})
    assert forge.post(note, files) == "report: note created"
    assert server.notes[0]["body"] == forge.MARKER and len(server.notes) == 2


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda mp, url: None, "not in CI"),
        (
            lambda mp, url: (
                gitlab(mp, url),
                mp.setenv("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "99"),
            ),
            "fork",
        ),
        (lambda mp, url: (gitlab(mp, url), mp.delenv("REPORT_TOKEN")), "REPORT_TOKEN"),
        (
            lambda mp, url: (gitlab(mp, url), mp.delenv("CI_MERGE_REQUEST_IID")),
            "not a merge request",
        ),
        (lambda mp, url: (github(mp, url), mp.setenv("PR_HEAD_REPO", "fork/model")), "fork"),
    ],
)
def test_never_posts_outside_a_same_project_merge_request(
    monkeypatch, server, files, setup, reason
) -> None:
    setup(monkeypatch, server)
    assert reason in forge.post(note, files)
    assert server.requests == []


def test_tokens_travel_over_https_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-https"):
        forge.http_json("GET", "http://gitlab.example/api", {"PRIVATE-TOKEN": "x"}, None)
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(ValueError, match="non-https"):
        forge.http_upload("http://gitlab.example/api", {"PRIVATE-TOKEN": "x"}, tmp_path / "a.png")
