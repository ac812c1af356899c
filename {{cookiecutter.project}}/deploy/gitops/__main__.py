"""GitOps write-back: one values file per environment in the GitOps repo, read by Argo CD.

    python -m deploy.gitops env-name BRANCH
    python -m deploy.gitops deploy   [--branch B] [--image REF] [--repo URL] [--commit SHA] ...
    python -m deploy.gitops teardown [--branch B] [--repo URL] [--project NAME]
    python -m deploy.gitops gc       [--live-branch B ...| --remote R] [--ttl 7d] [--dry-run]
    python -m deploy.gitops rollback --reason TEXT [--to-version N]
    python -m deploy.gitops envs     [--repo URL] [--project NAME]     (read-only)

Environment: DEPLOY_BRANCH (else CI_COMMIT_REF_NAME, GITHUB_HEAD_REF, GITHUB_REF_NAME, git HEAD),
GITOPS_REPO, GITOPS_BRANCH (default main), GITOPS_TOKEN and GITOPS_USER (HTTPS remotes),
GITOPS_TTL (gc), ROLLBACK_REASON and ROLLBACK_VERSION (rollback), GATE_OVERRIDE (deploy),
MLOPS_PROJECT (without pyproject.toml), MLFLOW_TRACKING_URI, PREVIEW_DOMAIN; DEPLOY_WAIT,
DEPLOY_BASE_URL, ARGOCD_SERVER, ARGOCD_APP_NAMESPACE and ARGOCD_TOKEN (the rollout check of
deploy and rollback, see verify.py).

Branch names are data: they reach git only as list arguments and the values file only through
yaml.safe_dump. Pass them as `--branch=VALUE` (or in DEPLOY_BRANCH) so that a branch named like
an option stays a value. Exit status 0 includes "nothing to do".
"""

from __future__ import annotations

import argparse
import importlib
import os

from {{ cookiecutter.__package }}.errors import run

from ..naming import env_name
from ..settings import load_settings


def print_env_name(args: argparse.Namespace) -> None:
    print(env_name(args.branch_name, args.default_branch or load_settings().default_branch))


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project name (default: MLOPS_PROJECT, pyproject.toml)")
    parser.add_argument("--default-branch", help="branch that deploys to production")
    parser.add_argument("--repo", help="GitOps repo path or URL (default: GITOPS_REPO)")


def branch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--branch", help="default: DEPLOY_BRANCH, CI variables, git HEAD")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m deploy.gitops", description=__doc__.split("\n")[0]
    )
    sub = top.add_subparsers(dest="command", required=True)

    name = sub.add_parser("env-name", help="print the environment name of a branch")
    name.add_argument("branch_name", metavar="BRANCH")
    name.add_argument("--default-branch")

    deploy = sub.add_parser("deploy", help="write this branch's values into the GitOps repo")
    common(deploy)
    branch_option(deploy)
    deploy.add_argument("--image", help="image reference, e.g. host:5000/name:tag@sha256:...")
    deploy.add_argument("--commit", help="git commit of the model (default: build/lineage.json)")
    deploy.add_argument("--run-id", help="MLflow run id (default: build/lineage.json)")
    deploy.add_argument("--model-name", help="registered model name (default: build/lineage.json)")
    deploy.add_argument("--model-version", help="registered model version")
    deploy.add_argument("--deployed-at", help="ISO time (default: now)")
    deploy.add_argument(
        "--gate-override",
        metavar="REASON",
        help="promote although production's model cannot score the new data (default: "
        "GATE_OVERRIDE); recorded with the deploy",
    )

    teardown = sub.add_parser("teardown", help="remove this branch's environment")
    common(teardown)
    branch_option(teardown)

    envs = sub.add_parser("envs", help="list this project's environments (read-only)")
    common(envs)

    gc = sub.add_parser("gc", help="remove environments of deleted branches or past their TTL")
    common(gc)
    gc.add_argument("--live-branch", action="append", help="an existing branch (repeatable)")
    gc.add_argument("--remote", help="model repo remote to list branches from (default: origin)")
    gc.add_argument(
        "--ttl",
        default=os.environ.get("GITOPS_TTL") or None,
        help="remove environments deployed longer ago than this, e.g. 7d (default: GITOPS_TTL)",
    )
    gc.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    rollback = sub.add_parser("rollback", help="production back to its previous deploy")
    common(rollback)
    rollback.add_argument("--reason", help="why production goes back (default: ROLLBACK_REASON)")
    rollback.add_argument(
        "--to-version", help="a model version deployed before (default: ROLLBACK_VERSION)"
    )
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "env-name":
        print_env_name(args)
        return
    # The commands are imported on use: `env-name` needs nothing but the standard library, so CI
    # can name an environment before it installs anything.
    command = importlib.import_module(f".{args.command}", __package__)
    getattr(command, f"cmd_{args.command}")(args)


if __name__ == "__main__":
    run(main)
