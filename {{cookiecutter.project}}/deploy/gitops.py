"""GitOps write-back: one values file per environment in the GitOps repo, read by Argo CD.

    python -m deploy.gitops env-name BRANCH
    python -m deploy.gitops deploy   [--branch B] [--image REF] [--repo URL] [--commit SHA] ...
    python -m deploy.gitops teardown [--branch B] [--repo URL] [--project NAME]
    python -m deploy.gitops gc       [--live-branch B ...| --remote R] [--ttl 7d] [--dry-run]

Environment: DEPLOY_BRANCH (else CI_COMMIT_REF_NAME, GITHUB_HEAD_REF, GITHUB_REF_NAME, git HEAD),
GITOPS_REPO, GITOPS_BRANCH (default main), GITOPS_TOKEN and GITOPS_USER (HTTPS remotes),
GITOPS_TTL (gc), MLOPS_PROJECT (without pyproject.toml), MLFLOW_TRACKING_URI, PREVIEW_DOMAIN.

Branch names are data: they reach git only as list arguments and the values file only through
yaml.safe_dump. Pass them as `--branch=VALUE` (or in DEPLOY_BRANCH) so that a branch named like
an option stays a value. Exit status 0 includes "nothing to do".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import gate as quality_gate
from . import registry, settings
from .gitrepo import GitError, Outcome, ensure_local_repo, redact, transact
from .naming import PRODUCTION, env_name, preview_host, validate_project_name
from .values import (
    deep_merge,
    dump,
    image_from_artifact,
    load_overrides,
    load_values,
    parse_image,
    read_json,
    same_apart_from_time,
    validate,
    without_empty,
)

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "values.schema.json"
OVERRIDES = HERE / "values.yaml"
TTL = re.compile(r"^(\d+)([smhdw])$")
TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(RuntimeError):
    pass


def env_dir(worktree: Path, project: str, env: str) -> Path:
    return worktree / "envs" / project / env


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _settings(args: argparse.Namespace) -> settings.Settings:
    conf = settings.load(args.project, args.default_branch, args.repo)
    problem = validate_project_name(conf.project) if conf.project else "no project name"
    if problem:
        raise UsageError(f"{problem} (set --project, MLOPS_PROJECT or [project] name)")
    return conf


def _repo(conf: settings.Settings) -> str:
    if not conf.gitops_repo:
        raise UsageError("no GitOps repo: pass --repo, set GITOPS_REPO or [tool.mlops].gitops-repo")
    if conf.gitops_repo_is_default:
        ensure_local_repo(conf.gitops_repo)
    return conf.gitops_repo


def _branch(args: argparse.Namespace, conf: settings.Settings) -> str:
    branch = args.branch or settings.current_branch(conf.root)
    if not branch:
        raise UsageError("no branch: pass --branch or set DEPLOY_BRANCH")
    return branch


def _report(outcome: Outcome, what: str) -> None:
    if outcome.committed:
        retries = outcome.attempts - 1
        print(f"{what}: committed and pushed ({retries} retries)")
    else:
        print(f"{what}: nothing to do")


# --- deploy ----------------------------------------------------------------------------------


def _lineage(args: argparse.Namespace, conf: settings.Settings, branch: str) -> dict[str, Any]:
    """Lineage from flags first, then from `make train`'s build/lineage.json."""
    recorded = read_json(conf.root / "build" / "lineage.json")
    version = args.model_version or recorded.get("model_version")
    commit = args.commit or recorded.get("git_commit") or settings.git_commit(conf.root)
    return without_empty(
        {
            "branch": branch,
            "gitCommit": commit,
            "mlflowRunId": args.run_id or recorded.get("run_id"),
            "modelName": args.model_name or recorded.get("model_name"),
            "modelVersion": None if version is None else str(version),
            "deployedAt": args.deployed_at or _iso(datetime.now(UTC)),
        }
    )


def _image(args: argparse.Namespace, conf: settings.Settings):
    if args.image:
        image = parse_image(args.image)
    else:
        image = image_from_artifact(read_json(conf.root / "build" / "image.json"))
    if image is None:
        raise UsageError("no image: pass --image REF or run `make image` (build/image.json)")
    if not (image.tag or image.digest):
        # The schema allows it, but the chart refuses to render without one.
        raise UsageError(f"image {image.reference} needs a tag or, better, a digest")
    return image


def _check_image_holds_the_model(
    args: argparse.Namespace, conf: settings.Settings, lineage: dict[str, Any]
) -> None:
    """The values must not name one MLflow run while the image serves another's model (e.g. a
    `make train` after `make image`): build/image.json records the run its Bento came from."""
    if args.image:
        return
    built_from = read_json(conf.root / "build" / "image.json").get("mlflow_run_id")
    run_id = lineage.get("mlflowRunId")
    if built_from and run_id and built_from != run_id:
        raise UsageError(
            f"build/image.json holds the model of MLflow run {built_from}, but the deploy names "
            f"run {run_id}: run `make bento image` for the current model"
        )


def build_values(args: argparse.Namespace, conf: settings.Settings, env: str, branch: str):
    image = _image(args, conf)
    lineage = _lineage(args, conf, branch)
    _check_image_holds_the_model(args, conf, lineage)
    generated = {
        "project": conf.project,
        "environment": env,
        "image": without_empty(
            {"repository": image.repository, "tag": image.tag, "digest": image.digest}
        ),
        "lineage": lineage,
        "ingress": {"host": preview_host(conf.project, env, conf.preview_domain)},
    }
    # Per-project overrides may switch the ingress off; everything generated wins over them.
    base = deep_merge({"ingress": {"enabled": True}}, load_overrides(OVERRIDES))
    merged = deep_merge(base, generated)
    values = {key: merged[key] for key in generated} | merged  # generated keys first: readable
    validate(values, SCHEMA)
    return values, image


def _deploy_message(conf: settings.Settings, env: str, lineage: dict[str, Any]) -> str:
    return (
        f"deploy {conf.project}/{env}\n\n"
        f"project: {conf.project}\n"
        f"branch: {json.dumps(lineage.get('branch'), ensure_ascii=False)}\n"
        f"commit: {lineage.get('gitCommit', 'unknown')}\n"
        f"mlflow run: {lineage.get('mlflowRunId', 'unknown')}\n"
        f"model version: {lineage.get('modelVersion', 'unknown')}\n"
    )


def deploy_change(conf: settings.Settings, env: str, values: dict[str, Any]):
    """The edit for one deploy; for production it first runs the quality gate."""
    gate = quality_gate.load_gate(conf.root / "params.yaml")
    metrics = read_json(conf.root / "build" / "lineage.json").get("metrics") or {}
    new = quality_gate.new_metric(gate, metrics)

    def change(worktree: Path) -> str | None:
        target = env_dir(worktree, conf.project, env)
        if same_apart_from_time(load_values(target / "values.yaml"), values):
            return None
        message = _deploy_message(conf, env, values["lineage"])
        if env == PRODUCTION:
            verdict = quality_gate.judge(gate, new, quality_gate.read_record(target))
            print(verdict.summary)
            if not verdict.passed:
                raise quality_gate.GateFailed(verdict.summary)
            message += verdict.summary + "\n"
            target.mkdir(parents=True, exist_ok=True)
            record = quality_gate.record(gate, new, values["lineage"])
            (target / quality_gate.GATE_FILE).write_text(record, encoding="utf-8")
        target.mkdir(parents=True, exist_ok=True)
        (target / "values.yaml").write_text(dump(values), encoding="utf-8")
        return message

    return change


def cmd_deploy(args: argparse.Namespace) -> int:
    conf = _settings(args)
    branch = _branch(args, conf)
    env = env_name(branch, conf.default_branch)
    values, image = build_values(args, conf, env, branch)
    repo = _repo(conf)
    outcome = transact(repo, deploy_change(conf, env, values))
    _report(outcome, f"deploy {conf.project}/{env}")
    lineage = values["lineage"]
    registry.set_alias(
        conf.mlflow_tracking_uri, lineage.get("modelName"), lineage.get("modelVersion"), env
    )
    run_url = read_json(conf.root / "build" / "lineage.json").get("run_url")
    print(f"environment: {env}")
    print(f"preview:     http://{values['ingress']['host']}/")
    print(f"mlflow run:  {run_url or lineage.get('mlflowRunId', '-')}")
    print(f"image:       {image.reference}")
    print(f"values:      {redact(repo)} envs/{conf.project}/{env}/values.yaml")
    return 0


# --- teardown --------------------------------------------------------------------------------


def _remove_envs(
    conf: settings.Settings, envs: list[str], removed_models: dict[str, str | None]
) -> Callable[[Path], None]:
    """Delete env directories, remembering each env's model name for the alias cleanup."""

    def remove(worktree: Path) -> None:
        removed_models.clear()
        for env in envs:
            target = env_dir(worktree, conf.project, env)
            if target.is_dir():
                removed_models[env] = (
                    load_values(target / "values.yaml").get("lineage", {}).get("modelName")
                )
                shutil.rmtree(target)

    return remove


def cmd_teardown(args: argparse.Namespace) -> int:
    conf = _settings(args)
    branch = _branch(args, conf)
    env = env_name(branch, conf.default_branch)
    if env == PRODUCTION:
        raise UsageError(f"refusing to tear down production (branch {branch!r})")
    removed: dict[str, str | None] = {}
    remove = _remove_envs(conf, [env], removed)

    def change(worktree: Path) -> str | None:
        remove(worktree)
        if not removed:
            return None
        return (
            f"teardown {conf.project}/{env}\n\n"
            f"project: {conf.project}\nbranch: {json.dumps(branch, ensure_ascii=False)}\n"
        )

    outcome = transact(_repo(conf), change)
    _report(outcome, f"teardown {conf.project}/{env}")
    for gone, model in removed.items():
        registry.delete_alias(conf.mlflow_tracking_uri, model, gone)
    return 0


# --- gc --------------------------------------------------------------------------------------


def parse_ttl(text: str) -> timedelta:
    match = TTL.match(text)
    if not match:
        raise UsageError(f"--ttl {text!r}: use a number and one of s, m, h, d, w (e.g. 7d)")
    return timedelta(**{TTL_UNITS[match[2]]: int(match[1])})


def remote_branches(root: Path, remote: str) -> list[str]:
    """Branch names on a git remote of the model repo (`git ls-remote --heads`)."""
    result = subprocess.run(
        ["git", "ls-remote", "--heads", "--", remote],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UsageError(f"git ls-remote {remote} failed: {result.stderr.strip()}")
    heads = [line.split("\t", 1)[1] for line in result.stdout.splitlines() if "\t" in line]
    branches = [head.removeprefix("refs/heads/") for head in heads]
    if not branches:
        # An empty answer would mark every environment stale; trust it only when explicit.
        raise UsageError(f"git ls-remote {remote} lists no branches; pass --live-branch instead")
    return branches


def _has_origin(root: Path) -> bool:
    found = subprocess.run(
        ["git", "remote", "get-url", "origin"], cwd=root, capture_output=True, check=False
    )
    return found.returncode == 0


def _live_envs(args: argparse.Namespace, conf: settings.Settings) -> set[str] | None:
    """Env names of the branches that still exist, or None to skip the branch check."""
    if args.live_branch is not None:
        branches = [b for chunk in args.live_branch for b in chunk.split()]
    elif args.remote:
        branches = remote_branches(conf.root, args.remote)
    elif _has_origin(conf.root):
        branches = remote_branches(conf.root, "origin")
    else:
        print("no --live-branch, --remote or origin remote: not checking for deleted branches")
        return None
    return {env_name(b, conf.default_branch) for b in branches}


def _expired(values: dict[str, Any], cutoff: datetime | None) -> bool:
    deployed = values.get("lineage", {}).get("deployedAt")
    if cutoff is None or not deployed:
        return False
    try:
        return _parse_time(str(deployed)) < cutoff
    except ValueError:
        return False


def gc_plan(worktree: Path, conf: settings.Settings, live: set[str] | None, cutoff) -> dict:
    """Which env directories to remove and why; production is never in it."""
    plan: dict[str, str] = {}
    project_dir = worktree / "envs" / conf.project
    envs = (
        sorted(p.name for p in project_dir.iterdir() if p.is_dir()) if project_dir.is_dir() else []
    )
    for env in envs:
        if env == PRODUCTION:
            continue
        if live is not None and env not in live:
            plan[env] = "branch is gone"
        elif _expired(load_values(project_dir / env / "values.yaml"), cutoff):
            plan[env] = "TTL passed"
    return plan


def cmd_gc(args: argparse.Namespace) -> int:
    conf = _settings(args)
    live = _live_envs(args, conf)
    cutoff = datetime.now(UTC) - parse_ttl(args.ttl) if args.ttl else None
    removed: dict[str, str | None] = {}

    def change(worktree: Path) -> str | None:
        plan = gc_plan(worktree, conf, live, cutoff)
        for env, reason in plan.items():
            print(f"{'would remove' if args.dry_run else 'remove'} {conf.project}/{env}: {reason}")
        if args.dry_run or not plan:
            return None
        _remove_envs(conf, list(plan), removed)(worktree)
        lines = "".join(f"- {env}: {reason}\n" for env, reason in plan.items())
        return f"gc {conf.project}: remove {len(plan)} environment(s)\n\n{lines}"

    outcome = transact(_repo(conf), change)
    _report(outcome, f"gc {conf.project}")
    for gone, model in removed.items():
        registry.delete_alias(conf.mlflow_tracking_uri, model, gone)
    return 0


# --- CLI -------------------------------------------------------------------------------------


def cmd_env_name(args: argparse.Namespace) -> int:
    default = args.default_branch or settings.load().default_branch
    print(env_name(args.branch_name, default))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project name (default: MLOPS_PROJECT, pyproject.toml)")
    parser.add_argument("--default-branch", help="branch that deploys to production")
    parser.add_argument("--repo", help="GitOps repo path or URL (default: GITOPS_REPO)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m deploy.gitops", description=__doc__.split("\n")[0]
    )
    sub = top.add_subparsers(dest="command", required=True)

    name = sub.add_parser("env-name", help="print the environment name of a branch")
    name.add_argument("branch_name", metavar="BRANCH")
    name.add_argument("--default-branch")
    name.set_defaults(func=cmd_env_name)

    dep = sub.add_parser("deploy", help="write this branch's values into the GitOps repo")
    _common(dep)
    dep.add_argument("--branch", help="default: DEPLOY_BRANCH, CI variables, git HEAD")
    dep.add_argument("--image", help="image reference, e.g. host:5000/name:tag@sha256:...")
    dep.add_argument("--commit", help="git commit of the model (default: build/lineage.json)")
    dep.add_argument("--run-id", help="MLflow run id (default: build/lineage.json)")
    dep.add_argument("--model-name", help="registered model name (default: build/lineage.json)")
    dep.add_argument("--model-version", help="registered model version")
    dep.add_argument(
        "--deployed-at", type=lambda t: _iso(_parse_time(t)), help="ISO time (default: now)"
    )
    dep.set_defaults(func=cmd_deploy)

    down = sub.add_parser("teardown", help="remove this branch's environment")
    _common(down)
    down.add_argument("--branch", help="default: DEPLOY_BRANCH, CI variables, git HEAD")
    down.set_defaults(func=cmd_teardown)

    gc = sub.add_parser("gc", help="remove environments of deleted branches or past their TTL")
    _common(gc)
    gc.add_argument("--live-branch", action="append", help="an existing branch (repeatable)")
    gc.add_argument("--remote", help="model repo remote to list branches from (default: origin)")
    gc.add_argument(
        "--ttl",
        default=os.environ.get("GITOPS_TTL") or None,
        help="remove environments deployed longer ago than this, e.g. 7d (default: GITOPS_TTL)",
    )
    gc.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    gc.set_defaults(func=cmd_gc)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, GitError, quality_gate.GateFailed, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
