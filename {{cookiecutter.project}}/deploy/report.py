"""`make report`: the merge/pull request report, build/report.md.

    python -m deploy.report          write build/report.md and build/deploy.env
    python -m deploy.report --post   ... and post it as the one sticky note (CI only; forge.py)

The report holds the metrics and params diff against the target branch (`dvc metrics diff`,
`dvc params diff`), the reproducibility verdict (build/reproduce.json), the preview URL, the
MLflow run (build/lineage.json) and the image (build/image.json). Plots stay pipeline artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
from pathlib import Path
from typing import Any, TypeVar

from {{ cookiecutter.__package }}.atomic import write_text
from {{ cookiecutter.__package }}.errors import ProjectError, run

from .artifacts import BUILD, ImageRecord, Record, ReproduceRecord, TrainRecord
from .commands import current_branch, dvc, git_output, head_commit
from .forge import MARKER, post
from .naming import env_name, preview_host
from .settings import load_settings

REPORT_FILE = BUILD / "report.md"
DOTENV_FILE = BUILD / "deploy.env"


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
        if git_output(root, "rev-parse", "--verify", "--quiet", ref + "^{commit}"):
            return ref
    # `--` ends the options: a branch name is data, even one starting with '-'.
    if git_output(root, "fetch", "--quiet", "--depth=50", "origin", "--", branch) is None:
        return None
    return git_output(root, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}")


def dvc_diff(root: Path, what: str, ref: str) -> dict[str, Any] | None:
    """`dvc metrics diff` / `dvc params diff` as JSON: {file: {name: {old, new, diff}}}."""
    try:
        return json.loads(dvc(what, "diff", "--json", ref, cwd=root) or "{}")
    except (ProjectError, json.JSONDecodeError):
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


def reproduce_section(report: ReproduceRecord | None) -> str:
    if report is None:
        return "_Not checked in this pipeline (no build/reproduce.json)._\n"
    icon = {"pass": "✅", "fail": "❌"}.get(report.verdict, "❔")
    text = f"{icon} **{cell(report.verdict.upper())}**"
    if report.max_abs_diff is not None:
        text += f" (max abs diff {cell(report.max_abs_diff)}, tolerance {cell(report.tolerance)})"
    return text + "\n" + "".join(f"- {cell(f)}\n" for f in report.failures)


R = TypeVar("R", bound=Record)


def readable(cls: type[R], root: Path) -> tuple[R | None, str]:
    """A record for the report, and what to say when it cannot be read (the report is
    information: an unreadable record is named, never a reason to fail)."""
    try:
        return cls.read(root), ""
    except ProjectError as error:
        return None, f" ({cell(error)})"


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
    settings = load_settings()
    branch = current_branch(root) or settings.default_branch
    env = env_name(branch, settings.default_branch)
    preview = f"http://{preview_host(settings.project, env, settings.preview_domain)}/"
    target = target_branch(settings.default_branch)
    ref = target_ref(root, target)
    metrics = dvc_diff(root, "metrics", ref) if ref else None
    params = dvc_diff(root, "params", ref) if ref else None
    trained, train_problem = readable(TrainRecord, root)
    image, image_problem = readable(ImageRecord, root)
    reproduced, _ = readable(ReproduceRecord, root)
    run = trained.run_url if trained else f"_not logged (run `make train`)_{train_problem}"
    built = (
        f"`{cell(image.reference)}`" if image else f"_not built in this pipeline_{image_problem}"
    )
    commit = (head_commit(root) or "")[:12]
    # Branch names never enter the note: only the environment name, a DNS label we derived.
    lines = [
        MARKER,
        f"## Model report: `{cell(settings.project)}` → environment `{env}`",
        "",
        f"Commit `{cell(commit) or 'unknown'}`, compared with the target branch `{cell(target)}`.",
        "",
        "### Metrics",
        diff_table(metrics, ("metric", "target", "this change", "diff"), target),
        "### Params (changed only)",
        diff_table(params, ("param", "target", "this change", "diff"), target),
        "### Reproducibility",
        reproduce_section(reproduced),
        "### Links",
        f"- Preview: {preview}",
        f"- MLflow run: {run}",
        f"- Image: {built}",
    ]
    where = artifacts_url()
    lines.append(f"- Plots: pipeline artifacts{f' ({where})' if where else ' (metrics/plots/)'}")
    return "\n".join(lines) + "\n", {"ENVIRONMENT": env, "PREVIEW_URL": preview}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--post", action="store_true", help="post the report as the sticky MR/PR note (CI only)"
    )
    args = parser.parse_args(argv)
    root = load_settings().root
    body, dotenv = build_report(root)
    write_text(root / REPORT_FILE, body)
    # Only derived, DNS-safe values: a dotenv line can never be broken by a branch name.
    write_text(root / DOTENV_FILE, "".join(f"{k}={v}\n" for k, v in dotenv.items()))
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


if __name__ == "__main__":
    run(main)
