"""`make report`: the merge/pull request report, build/report.md.

    python -m deploy.report          write build/report.md and build/deploy.env
    python -m deploy.report --post   ... and post it as the one sticky note (CI only; forge.py)

The report holds the metrics and params diff against the target branch (`dvc metrics diff`,
`dvc params diff`), the plots as pictures beside the target's (deploy/plots.py, in
build/report/), the reproducibility verdict (build/reproduce.json), the preview URL, the MLflow
run (build/lineage.json), the image (build/image.json) and the model card (build/model_card.md).
build/report.md links its files relatively; the posted note links them where the forge keeps
them (deploy/forge.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from {{ cookiecutter.__package }}.atomic import write_text
from {{ cookiecutter.__package }}.config import load_params
from {{ cookiecutter.__package }}.errors import ProjectError, run

from . import model_card, plots
from .artifacts import BUILD, ImageRecord, Record, ReproduceRecord, TrainRecord
from .commands import current_branch, dvc, git_output, head_commit
from .forge import MARKER, Files, post
from .markdown import cell
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


@dataclass(frozen=True)
class Facts:
    """What the report says, gathered once; `render` writes it with the files' links."""

    project: str
    env: str
    preview: str
    commit: str
    target: str
    target_found: bool
    metrics: dict[str, Any] | None
    params: dict[str, Any] | None
    pictures: plots.Pictures
    card: bool  # build/model_card.md was written
    run: str
    image: str
    reproduced: ReproduceRecord | None


def task_of(root: Path) -> str:
    try:
        return load_params(root / "params.yaml").data.task
    except ProjectError:
        return "classification"  # the plots then name what is missing


def gather(root: Path) -> Facts:
    settings = load_settings()
    branch = current_branch(root) or settings.default_branch
    env = env_name(branch, settings.default_branch)
    target = target_branch(settings.default_branch)
    ref = target_ref(root, target)
    trained, train_problem = readable(TrainRecord, root)
    image, image_problem = readable(ImageRecord, root)
    reproduced, _ = readable(ReproduceRecord, root)
    try:
        card = model_card.write(root) is not None
    except ProjectError:
        card = False
    built = (
        f"`{cell(image.reference)}`" if image else f"_not built in this pipeline_{image_problem}"
    )
    return Facts(
        project=settings.project,
        env=env,
        preview=f"http://{preview_host(settings.project, env, settings.preview_domain)}/",
        commit=(head_commit(root) or "")[:12],
        target=target,
        target_found=ref is not None,
        metrics=dvc_diff(root, "metrics", ref) if ref else None,
        params=dvc_diff(root, "params", ref) if ref else None,
        pictures=plots.render(root, ref, target, task_of(root)),
        card=card,
        run=trained.run_url if trained else f"_not logged (run `make train`)_{train_problem}",
        image=built,
        reproduced=reproduced,
    )


def pictures_section(facts: Facts, files: Files) -> list[str]:
    target = f"`{cell(facts.target)}`"
    if not facts.target_found:
        lines = [f"_No target branch {target} to compare with: this change's plots alone._"]
    elif not facts.pictures.compared:
        lines = [f"_The target branch {target} has no plots: this change's plots alone._"]
    else:
        lines = [f"This change beside the target branch {target}."]
    lines.append("")
    listed = []
    for picture in facts.pictures.pictures:
        url = files.urls.get(picture.file)
        if url:
            lines += [f"**{picture.title}**", "", f"![{picture.title}]({url})", ""]
        else:
            listed.append(f"`{picture.file}` ({picture.title})")
    if listed:
        lines += [f"Pictures {files.elsewhere}: {', '.join(listed)}.", ""]
    if not facts.pictures.pictures:
        lines += ["_No plots to show._", ""]
    lines += [f"- ⚠️ {problem}" for problem in facts.pictures.problems]
    return lines


def render(facts: Facts, files: Files) -> str:
    """The markdown note, its pictures and model card linked as `files` says."""
    card = files.urls.get(model_card.CARD_FILE.name)
    if not facts.card:
        card_line = "_none (run `make train`)_"
    elif card:
        card_line = f"[model_card.md]({card})"
    else:
        card_line = f"`model_card.md` {files.elsewhere}"
    # Branch names never enter the note: only the environment name, a DNS label we derived.
    lines = [
        MARKER,
        f"## Model report: `{cell(facts.project)}` → environment `{facts.env}`",
        "",
        f"Commit `{cell(facts.commit) or 'unknown'}`, compared with the target branch `{cell(facts.target)}`.",
        "",
        "### Metrics",
        diff_table(facts.metrics, ("metric", "target", "this change", "diff"), facts.target),
        "### Params (changed only)",
        diff_table(facts.params, ("param", "target", "this change", "diff"), facts.target),
        "### Plots",
        *pictures_section(facts, files),
        "### Reproducibility",
        reproduce_section(facts.reproduced),
        "### Links",
        f"- Model card: {card_line}; served by the preview at {facts.preview}model-card",
        f"- Preview: {facts.preview}",
        f"- MLflow run: {facts.run}",
        f"- Image: {facts.image}",
    ]
    return "\n".join(lines) + "\n"


def note_files(root: Path, facts: Facts) -> list[Path]:
    """The files the note links: its pictures and the model card."""
    files = [root / plots.PICTURES_DIR / picture.file for picture in facts.pictures.pictures]
    return files + ([root / model_card.CARD_FILE] if facts.card else [])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--post", action="store_true", help="post the report as the sticky MR/PR note (CI only)"
    )
    args = parser.parse_args(argv)
    root = load_settings().root
    facts = gather(root)
    files = note_files(root, facts)
    # build/report.md sits in build/, beside build/report/ and build/model_card.md.
    beside = Files({path.name: path.relative_to(root / BUILD).as_posix() for path in files})
    body = render(facts, beside)
    write_text(root / REPORT_FILE, body)
    dotenv = {"ENVIRONMENT": facts.env, "PREVIEW_URL": facts.preview}
    # Only derived, DNS-safe values: a dotenv line can never be broken by a branch name.
    write_text(root / DOTENV_FILE, "".join(f"{k}={v}\n" for k, v in dotenv.items()))
    if os.environ.get("GITHUB_OUTPUT"):  # the deploy job's environment url on GitHub
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
            outputs.write(f"preview_url={dotenv['PREVIEW_URL']}\n")
    print(
        f"report: {REPORT_FILE} (environment {dotenv['ENVIRONMENT']}, preview {dotenv['PREVIEW_URL']})"
    )
    for problem in facts.pictures.problems:
        print(f"report: {problem}", file=sys.stderr)
    if args.post:
        try:
            print(post(lambda links: render(facts, links), files))
        except (urllib.error.URLError, ValueError, OSError) as error:
            # The report is information: a failed post must not fail the pipeline.
            print(f"report: posting failed: {error}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
