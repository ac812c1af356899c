"""Posting the report as the one sticky note of a merge request (GitLab) or pull request (GitHub).

Finds the note or comment carrying MARKER and updates it, or creates one: GitLab's Notes API
(CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID) or GitHub's issue comments API
(GITHUB_API_URL, GITHUB_REPOSITORY, PR_NUMBER), with the token in REPORT_TOKEN (GitLab) or
GITHUB_TOKEN. It never posts from a fork's merge request and never outside CI.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

MARKER = "<!-- model-report -->"

Request = Callable[[str, str, dict[str, str], dict[str, Any] | None], Any]


def http_json(method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> Any:
    """One JSON API call (urllib: no extra dependency). Tokens only travel over https."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(
            f"refusing to send a token to a non-https URL: {parts.scheme}://{parts.hostname}"
        )
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (scheme checked)
        return json.loads(response.read() or b"null")


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


def post_target() -> tuple[str, Callable[[Any], str], dict[str, str], str] | str:
    """The list URL, item URL maker, headers and update method for this CI; or why not to post."""
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
        base = (
            f"{env['CI_API_V4_URL']}/projects/{env['CI_PROJECT_ID']}"
            f"/merge_requests/{env['CI_MERGE_REQUEST_IID']}/notes"
        )
        return base, lambda note: f"{base}/{note}", {"PRIVATE-TOKEN": env["REPORT_TOKEN"]}, "PUT"
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
        return (
            f"{api}/issues/{env['PR_NUMBER']}/comments",
            lambda comment: f"{api}/issues/comments/{comment}",
            headers,
            "PATCH",
        )
    return "not in CI"


def post(body: str, request: Request = http_json) -> str:
    target = post_target()
    if isinstance(target, str):
        return f"report: not posted ({target})"
    list_url, item_url, headers, method = target
    return f"report: note {upsert(list_url, item_url, headers, body, request, method)}"
