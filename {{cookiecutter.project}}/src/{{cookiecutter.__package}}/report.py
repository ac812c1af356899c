"""`make report`: the merge/pull request report, build/report.md.

    python -m {{ cookiecutter.__package }}.report          write build/report.md and build/deploy.env
    python -m {{ cookiecutter.__package }}.report --post   ... and post it as the one sticky note (CI only)

The report holds the metrics and params diff against the target branch (`dvc metrics diff`,
`dvc params diff`), the reproducibility verdict (build/reproduce.json), the preview URL, the
MLflow run (build/lineage.json) and the image (build/image.json). Plots stay pipeline artifacts.

Posting finds the note or comment carrying MARKER and updates it, or creates one: GitLab's Notes
API (CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID) or GitHub's issue comments API
(GITHUB_API_URL, GITHUB_REPOSITORY, PR_NUMBER), with the token in REPORT_TOKEN (GitLab) or
GITHUB_TOKEN. It never posts from a fork's merge request and never outside CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy import settings as project_settings
from deploy.naming import env_name, preview_host

from .paths import BUILD, LINEAGE_FILE, REPRODUCE_REPORT

MARKER = "<!-- model-report -->"
REPORT_FILE = BUILD / "report.md"
DOTENV_FILE = BUILD / "deploy.env"
IMAGE_FILE = BUILD / "image.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _resolves(root: Path, ref: str) -> bool:
    return git(root, "rev-parse", "--verify", "--quiet", ref + "^{commit}").returncode == 0


def target_branch(default_branch: str) -> str:
    """The branch a merge/pull request goes into; the default branch otherwise."""
    for var in ("REPORT_TARGET_BRANCH", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "GITHUB_BASE_REF"):
        if os.environ.get(var):
            return os.environ[var]
    return default_branch


def target_ref(root: Path, branch: str) -> str | None:
    """A git revision of the target branch that DVC can read; fetched when CI cloned shallowly."""
    candidates = [os.environ.get("CI_MERGE_REQUEST_DIFF_BASE_SHA", ""), f"origin/{branch}", branch]
    for ref in filter(None, candidates):
        if _resolves(root, ref):
            return ref
    # `--` ends the options: a branch name is data, even one starting with '-'.
    fetched = git(root, "fetch", "--quiet", "--depth=50", "origin", "--", branch)
    if fetched.returncode == 0 and _resolves(root, "FETCH_HEAD"):
        return git(root, "rev-parse", "FETCH_HEAD").stdout.strip()
    return None


def dvc_diff(root: Path, what: str, ref: str) -> dict[str, Any] | None:
    """`dvc metrics diff` / `dvc params diff` as JSON: {file: {name: {old, new, diff}}}."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", what, "diff", "--json", ref],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return None


def cell(value: Any) -> str:
    """A value for a markdown table cell: numbers rounded, pipes and newlines defused."""
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def signed(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:+.4g}"
    return cell(value)


def diff_table(diff: dict[str, Any] | None, header: tuple[str, str, str, str], target: str) -> str:
    if diff is None:
        return f"_No diff: DVC could not read `{cell(target)}`._\n"
    rows = [
        f"| `{cell(name)}` | {cell(v.get('old'))} | {cell(v.get('new'))} | {signed(v.get('diff'))} |"
        for changes in diff.values()
        for name, v in sorted(changes.items())
    ]
    if not rows:
        return "_No changes._\n"
    lines = [f"| {' | '.join(header)} |", "|---|---:|---:|---:|", *rows]
    return "\n".join(lines) + "\n"


def reproduce_section(report: dict[str, Any]) -> str:
    if not report:
        return "_Not checked in this pipeline (no build/reproduce.json)._\n"
    verdict = str(report.get("verdict", "unknown"))
    icon = {"pass": "✅", "fail": "❌"}.get(verdict, "❔")
    text = f"{icon} **{cell(verdict.upper())}**"
    if report.get("max_abs_diff") is not None:
        text += f" (max abs diff {cell(report['max_abs_diff'])}, tolerance {cell(report.get('tolerance'))})"
    failures = report.get("failures") or []
    return text + "\n" + "".join(f"- {cell(f)}\n" for f in failures)


def image_reference(image: dict[str, Any]) -> str | None:
    if image.get("reference"):
        return str(image["reference"])
    if image.get("repository"):
        ref = str(image["repository"])
        ref += f":{image['tag']}" if image.get("tag") else ""
        ref += f"@{image['digest']}" if image.get("digest") else ""
        return ref
    return None


def artifacts_url() -> str | None:
    """Where the plots are: this pipeline's artifacts (never a public host)."""
    if os.environ.get("CI_JOB_URL"):
        return os.environ["CI_JOB_URL"]
    if os.environ.get("GITHUB_RUN_ID") and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        return (
            f"{server}/{os.environ['GITHUB_REPOSITORY']}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
        )
    return None


def build_report(root: Path) -> tuple[str, dict[str, str]]:
    """The markdown report and the dotenv values (ENVIRONMENT, PREVIEW_URL) of this checkout."""
    conf = project_settings.load()
    branch = project_settings.current_branch(root) or conf.default_branch
    env = env_name(branch, conf.default_branch)
    preview = f"http://{preview_host(conf.project, env, conf.preview_domain)}/"
    target = target_branch(conf.default_branch)
    ref = target_ref(root, target)
    metrics = dvc_diff(root, "metrics", ref) if ref else None
    params = dvc_diff(root, "params", ref) if ref else None
    lineage = read_json(root / LINEAGE_FILE)
    image = image_reference(read_json(root / IMAGE_FILE))
    run = lineage.get("run_url") or lineage.get("run_id")
    commit = (project_settings.git_commit(root) or "")[:12]
    # Branch names never enter the note: only the environment name, a DNS label we derived.
    lines = [
        MARKER,
        f"## Model report: `{cell(conf.project)}` → environment `{env}`",
        "",
        f"Commit `{cell(commit) or 'unknown'}`, compared with the target branch `{cell(target)}`.",
        "",
        "### Metrics",
        diff_table(metrics, ("metric", "target", "this change", "diff"), target),
        "### Params (changed only)",
        diff_table(params, ("param", "target", "this change", "diff"), target),
        "### Reproducibility",
        reproduce_section(read_json(root / REPRODUCE_REPORT)),
        "### Links",
        f"- Preview: {preview}",
        f"- MLflow run: {cell(run) if run else '_not logged (run `make train`)_'}",
        f"- Image: {'`' + cell(image) + '`' if image else '_not built in this pipeline_'}",
    ]
    where = artifacts_url()
    lines.append(f"- Plots: pipeline artifacts{f' ({where})' if where else ' (metrics/plots/)'}")
    return "\n".join(lines) + "\n", {"ENVIRONMENT": env, "PREVIEW_URL": preview}


# --- posting ---------------------------------------------------------------------------------

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.__package }}.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--post", action="store_true", help="post the report as the sticky MR/PR note (CI only)"
    )
    args = parser.parse_args(argv)
    root = project_settings.find_root()
    body, dotenv = build_report(root)
    (root / BUILD).mkdir(exist_ok=True)
    (root / REPORT_FILE).write_text(body, encoding="utf-8")
    # Only derived, DNS-safe values: a dotenv line can never be broken by a branch name.
    (root / DOTENV_FILE).write_text(
        "".join(f"{k}={v}\n" for k, v in dotenv.items()), encoding="utf-8"
    )
    if os.environ.get("GITHUB_OUTPUT"):  # the deploy job's environment url on GitHub
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
            outputs.write(f"preview_url={dotenv['PREVIEW_URL']}\n")
    print(
        f"report: {REPORT_FILE} (environment {dotenv['ENVIRONMENT']}, preview {dotenv['PREVIEW_URL']})"
    )
    if args.post:
        try:
            print(post(body))
        except (urllib.error.URLError, ValueError, OSError) as error:
            # The report is information: a failed post must not fail the pipeline.
            print(f"report: posting failed: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
