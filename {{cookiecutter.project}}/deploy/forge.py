"""Posting the report as the one sticky note of a merge request (GitLab) or pull request (GitHub).

Finds the note or comment carrying MARKER and updates it, or creates one: GitLab's Notes API
(CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID) or GitHub's issue comments API
(GITHUB_API_URL, GITHUB_REPOSITORY, PR_NUMBER), with the token in REPORT_TOKEN (GitLab) or
GITHUB_TOKEN. It never posts from a fork's merge request and never outside CI.

The note's files (pictures, model card) go where the forge keeps them for the project and
nowhere else: GitLab's project uploads API (`POST /projects/:id/uploads`, readable by who can
read the project); GitHub has no upload API for comments, so the comment names the files in the
workflow run's artifact `report` and links the run.
"""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "<!-- model-report -->"
REPORT_ARTIFACT = "report"  # the name of the GitHub workflow artifact that holds the files

Request = Callable[[str, str, dict[str, str], dict[str, Any] | None], Any]
Upload = Callable[[str, dict[str, str], Path], Any]


def checked(url: str) -> str:
    """Tokens only travel over https (or to this machine, for tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(
            f"refusing to send a token to a non-https URL: {parts.scheme}://{parts.hostname}"
        )
    return url


def http_json(method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> Any:
    """One JSON API call (urllib: no extra dependency)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(checked(url), data=data, method=method, headers=headers)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (scheme checked)
        return json.loads(response.read() or b"null")


def http_upload(url: str, headers: dict[str, str], path: Path) -> Any:
    """POST one file as multipart/form-data, field `file` (what GitLab's uploads API takes)."""
    boundary = secrets.token_hex(16)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    )
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(checked(url), data=body, method="POST", headers=headers)  # noqa: S310
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (scheme checked)
        return json.loads(response.read())


def upsert(
    list_url: str,
    item_url: Callable[[Any], str],
    headers: dict[str, str],
    body: str,
    request: Request,
    update_method: str = "PATCH",
) -> str:
    """Update the note/comment carrying MARKER, or create it; returns 'updated' or 'created'."""
    page = 1
    while True:
        separator = "&" if "?" in list_url else "?"
        items = (
            request("GET", f"{list_url}{separator}per_page=100&page={page}", headers, None) or []
        )
        for item in items:
            if MARKER in (item.get("body") or ""):
                try:
                    request(update_method, item_url(item["id"]), headers, {"body": body})
                    return "updated"
                except urllib.error.HTTPError as error:
                    if error.code != 403:  # someone else's note with our marker: make our own
                        raise
        if len(items) < 100:
            break
        page += 1
    request("POST", list_url, headers, {"body": body})
    return "created"


@dataclass(frozen=True)
class Target:
    """Where this CI posts: the notes (comments) list, one note's URL, the headers, the update
    method, and GitLab's uploads URL (GitHub has none)."""

    list_url: str
    item_url: Callable[[Any], str]
    headers: dict[str, str]
    update_method: str
    uploads_url: str | None = None


@dataclass(frozen=True)
class Files:
    """Where a reader finds the note's files: a URL for each, or one place holding the rest."""

    urls: dict[str, str]  # file name -> URL (relative to the note's page, or absolute)
    elsewhere: str = ""  # markdown saying where the files without a URL are


def run_url() -> str | None:
    """This GitHub workflow run's page (its artifacts are listed there)."""
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


def post_target() -> Target | str:
    """Where to post in this CI; or why not to post."""
    env = os.environ
    if env.get("GITLAB_CI"):
        if not env.get("CI_MERGE_REQUEST_IID"):
            return "not a merge request pipeline"
        if env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", env.get("CI_PROJECT_ID")) != env.get(
            "CI_PROJECT_ID"
        ):
            return "merge request from a fork"
        if not env.get("REPORT_TOKEN"):
            return "REPORT_TOKEN is not set (a project access token with api scope)"
        project = f"{env['CI_API_V4_URL']}/projects/{env['CI_PROJECT_ID']}"
        notes = f"{project}/merge_requests/{env['CI_MERGE_REQUEST_IID']}/notes"
        return Target(
            notes,
            lambda note: f"{notes}/{note}",
            {"PRIVATE-TOKEN": env["REPORT_TOKEN"]},
            "PUT",
            uploads_url=f"{project}/uploads",
        )
    if env.get("GITHUB_ACTIONS"):
        if not env.get("PR_NUMBER", "").isdigit():
            return "not a pull request"
        if env.get("PR_HEAD_REPO") != env.get("GITHUB_REPOSITORY"):
            return "pull request from a fork"
        if not env.get("GITHUB_TOKEN"):
            return "GITHUB_TOKEN is not set"
        api = f"{env.get('GITHUB_API_URL', 'https://api.github.com')}/repos/{env['GITHUB_REPOSITORY']}"
        headers = {
            "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
        }
        return Target(
            f"{api}/issues/{env['PR_NUMBER']}/comments",
            lambda comment: f"{api}/issues/comments/{comment}",
            headers,
            "PATCH",
        )
    return "not in CI"


def publish(target: Target, files: list[Path], upload: Upload) -> Files:
    """GitLab: upload each file into the project; one that fails is said, not fatal.
    GitHub: the files stay in the run's artifact."""
    if target.uploads_url is None:
        where = run_url()
        run = f"[this workflow run]({where})" if where else "this workflow run"
        return Files({}, f"in the artifact `{REPORT_ARTIFACT}` of {run}")
    urls, failures = {}, set()
    for path in files:
        try:
            urls[path.name] = upload(target.uploads_url, target.headers, path)["url"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as error:
            failures.add(type(error).__name__)
    failed = ", ".join(sorted(failures))
    return Files(urls, f"not uploaded ({failed}; the job's artifacts keep them)" if failed else "")


def post(
    render: Callable[[Files], str],
    files: list[Path],
    request: Request = http_json,
    upload: Upload = http_upload,
) -> str:
    """Publish the note's files, then post the note that `render` writes around them."""
    target = post_target()
    if isinstance(target, str):
        return f"report: not posted ({target})"
    body = render(publish(target, files, upload))
    outcome = upsert(
        target.list_url, target.item_url, target.headers, body, request, target.update_method
    )
    return f"report: note {outcome}"
