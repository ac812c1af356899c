"""`rollback`: production back to its previous deploy (or to a named model version), values and
gate record included, as a new GitOps commit. It bypasses the gate on purpose (the previous model
may score lower offline: that is why one goes back) and records who asked and why. Like a
deploy, it is done once production serves the model it went back to (verify.py)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError

from .. import gate, model_registry
from ..commands import git_output
from ..naming import PRODUCTION
from . import verify
from .environments import checked_settings, env_dir, gitops_repo, iso, report
from .repo import transact
from .values import dump

# Who asked, from the CI's own variables; a person's user name when run by hand.
REQUESTER_VARS = ("GITLAB_USER_LOGIN", "GITHUB_ACTOR")


@dataclass(frozen=True)
class Deploy:
    """One commit that wrote production's values."""

    commit: str
    subject: str
    values: dict[str, Any]

    @property
    def model(self) -> tuple[Any, Any]:
        """What makes two deploys the same: the model version and the image digest."""
        return self.values.get("lineage", {}).get("modelVersion"), self.values.get("image")


def production_history(worktree: Path, project: str) -> list[Deploy]:
    """Every commit that wrote production's values, newest first."""
    path = f"envs/{project}/{PRODUCTION}/values.yaml"
    log = git_output(worktree, "log", "--format=%H%x00%s", "--", path) or ""
    deploys = []
    for line in log.splitlines():
        commit, subject = line.split("\0", 1)
        text = git_output(worktree, "show", f"{commit}:{path}")
        if text is not None:  # a commit that removed the file has no values
            deploys.append(Deploy(commit, subject, yaml.safe_load(text) or {}))
    return deploys


def choose(history: list[Deploy], project: str, version: str | None) -> Deploy:
    """The deploy to return to: the named version's latest, or the deploy before the one that
    put the current model in production (so a second rollback walks further back)."""
    if not history:
        raise ProjectError(f"nothing to roll back: {project} was never deployed to production")
    current = history[0]
    deploys = [d for d in history if d.subject.startswith(f"deploy {project}/{PRODUCTION}")]
    if version is not None:
        for deploy in deploys:
            if str(deploy.model[0]) == version:
                if deploy.model == current.model:
                    raise ProjectError(f"model version {version} is in production already")
                return deploy
        known = ", ".join(dict.fromkeys(str(d.model[0]) for d in deploys))
        raise ProjectError(
            f"--to-version {version}: never deployed to production (deployed: {known or 'none'})"
        )
    origin = next((i for i, d in enumerate(deploys) if d.model == current.model), None)
    older = [d for d in deploys[(origin or 0) + 1 :] if d.model != current.model]
    if not older:
        raise ProjectError(
            f"nothing to roll back to: no production deploy of {project} before model version "
            f"{current.model[0]}"
        )
    return older[0]


def requester() -> str:
    for var in REQUESTER_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return getpass.getuser()


def cmd_rollback(args: argparse.Namespace) -> None:
    reason = (args.reason or os.environ.get("ROLLBACK_REASON") or "").strip()
    if not reason:
        raise ProjectError("rollback needs a reason: --reason TEXT or ROLLBACK_REASON")
    version = args.to_version or os.environ.get("ROLLBACK_VERSION") or None
    settings = checked_settings(args.project, args.default_branch, args.repo)
    project = settings.project
    repo = gitops_repo(settings)
    chosen: list[tuple[Deploy, verify.Check, verify.Expected]] = []

    def change(worktree: Path) -> str:
        target = choose(production_history(worktree, project), project, version)
        values = {**target.values, "lineage": {**target.values.get("lineage", {})}}
        values["lineage"]["deployedAt"] = iso(datetime.now(UTC))
        expected = verify.expected_of(values)
        # Its settings are checked before anything is written, as a deploy's.
        chosen[:] = [(target, verify.plan(repo, expected), expected)]
        production = env_dir(worktree, project, PRODUCTION)
        (production / "values.yaml").write_text(dump(values), encoding="utf-8")
        record = git_output(
            worktree, "show", f"{target.commit}:envs/{project}/{PRODUCTION}/{gate.GATE_FILE}"
        )
        if record is not None:  # the gate's baseline goes back with the model
            (production / gate.GATE_FILE).write_text(record + "\n", encoding="utf-8")
        return (
            f"rollback {project}/{PRODUCTION} to model version {target.model[0]}\n\n"
            f"reason: {json.dumps(reason, ensure_ascii=False)}\n"
            f"requested by: {json.dumps(requester(), ensure_ascii=False)}\n"
            f"back to: {target.commit}\n"
            "gate: bypassed (rollback)\n"
        )

    outcome = transact(repo, change, history=True)
    report(outcome, f"rollback {project}/{PRODUCTION}")
    target, check, expected = chosen[0]
    lineage = target.values.get("lineage", {})
    model_registry.set_alias(
        settings.mlflow_tracking_uri,
        lineage.get("modelName"),
        lineage.get("modelVersion"),
        PRODUCTION,
    )
    print(
        f"production:  model version {lineage.get('modelVersion')}, commit {lineage.get('gitCommit')}"
    )
    verify.wait(check, expected, outcome.revision)
