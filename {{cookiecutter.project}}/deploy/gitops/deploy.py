"""`deploy`: write this branch's values file into the GitOps repo (production behind the gate)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package }}.errors import ProjectError

from .. import champion, gate, model_registry
from ..artifacts import ImageRecord, TrainRecord
from ..champion import Comparison
from ..commands import head_commit
from ..naming import PRODUCTION, env_name, preview_host
from ..params import GateParams, load_pipeline_params
from ..settings import Settings
from ..urls import redact
from . import verify
from .environments import (
    branch_of,
    checked_settings,
    env_dir,
    gitops_repo,
    iso,
    parse_time,
    report,
)
from .repo import transact
from .values import (
    dump,
    environment_values,
    load_values,
    overrides_for,
    parse_image,
    same_apart_from_time,
)


def deployed_at(given: str | None) -> str:
    if not given:
        return iso(datetime.now(UTC))
    try:
        return iso(parse_time(given))
    except ValueError:
        raise ProjectError(
            f"--deployed-at {given!r}: not an ISO time such as 2026-01-31T12:00Z"
        ) from None


def lineage_values(args: argparse.Namespace, trained: TrainRecord | None, branch: str, root: Path):
    """The values file's lineage: flags first, then what `make train` recorded."""
    version = args.model_version or (trained.model_version if trained else None)
    return {
        "branch": branch,
        "gitCommit": args.commit or (trained.git_commit if trained else head_commit(root)),
        "mlflowRunId": args.run_id or (trained.mlflow_run_id if trained else None),
        "modelName": args.model_name or (trained.model_name if trained else None),
        "modelVersion": None if version is None else str(version),
        "deployedAt": deployed_at(args.deployed_at),
    }


def image_to_deploy(args: argparse.Namespace, root: Path, run_id: str | None) -> ImageRecord:
    """--image, else what `make image` pushed, which must hold the model being deployed."""
    if args.image:
        image = parse_image(args.image)
    else:
        image = ImageRecord.read(root)
        if image is None:
            raise ProjectError("no image: pass --image REF or run `make image` (build/image.json)")
        # A `make train` after `make image`: the values would name one run, the image serve another.
        if image.mlflow_run_id and run_id and image.mlflow_run_id != run_id:
            raise ProjectError(
                f"build/image.json holds the model of MLflow run {image.mlflow_run_id}, but the "
                f"deploy names run {run_id}: run `make bento image` for the current model"
            )
    if not (image.tag or image.digest):
        # The schema allows it, but the chart refuses to render without one.
        raise ProjectError(f"image {image.repository} needs a tag or, better, a digest")
    return image


def commit_message(settings: Settings, env: str, lineage: dict[str, Any]) -> str:
    return (
        f"deploy {settings.project}/{env}\n\n"
        f"project: {settings.project}\n"
        f"branch: {json.dumps(lineage.get('branch'), ensure_ascii=False)}\n"
        f"commit: {lineage.get('gitCommit') or 'unknown'}\n"
        f"mlflow run: {lineage.get('mlflowRunId') or 'unknown'}\n"
        f"model version: {lineage.get('modelVersion') or 'unknown'}\n"
    )


@dataclass(frozen=True)
class Promotion:
    """What a production deploy is judged on: the gate settings and both models' scores."""

    gate: GateParams
    comparison: Comparison
    override: str | None

    def check(self, target: Path, lineage: dict[str, Any]) -> str:
        """Judge against production (as this very tip of the GitOps repo has it); write the
        record on a pass, raise on a fail. Returns the verdict for the commit message."""
        verdict = gate.judge(self.gate, self.comparison, gate.read_record(target), self.override)
        print("\n".join([verdict.summary, *verdict.details]))
        if not verdict.passed:
            raise gate.GateFailed(verdict.summary)
        record = gate.record(self.gate, self.comparison, lineage, verdict)
        (target / gate.GATE_FILE).write_text(record, encoding="utf-8")
        return verdict.summary + "\n"


def promotion(settings: Settings, trained: TrainRecord | None, override: str | None) -> Promotion:
    if trained is None:
        raise ProjectError("production deploys need build/lineage.json: run `make train` first")
    gate_params = load_pipeline_params(settings.root).gate
    return Promotion(gate_params, champion.compare(settings, trained.metrics), override)


def deploy_change(settings: Settings, env: str, values: dict[str, Any], promote: Promotion | None):
    """The edit for one deploy; a production deploy passes the gate first."""

    def change(worktree: Path) -> str | None:
        target = env_dir(worktree, settings.project, env)
        if same_apart_from_time(load_values(target / "values.yaml"), values):
            return None
        message = commit_message(settings, env, values["lineage"])
        target.mkdir(parents=True, exist_ok=True)
        if promote is not None:
            message += promote.check(target, values["lineage"])
        (target / "values.yaml").write_text(dump(values), encoding="utf-8")
        return message

    return change


def cmd_deploy(args: argparse.Namespace) -> None:
    settings = checked_settings(args.project, args.default_branch, args.repo)
    branch = branch_of(args.branch, settings)
    env = env_name(branch, settings.default_branch)
    trained = TrainRecord.read(settings.root)
    lineage = lineage_values(args, trained, branch, settings.root)
    image = image_to_deploy(args, settings.root, lineage["mlflowRunId"])
    host = preview_host(settings.project, env, settings.preview_domain)
    values = environment_values(settings.project, env, host, image, lineage, overrides_for(env))
    override = args.gate_override or os.environ.get("GATE_OVERRIDE") or None
    promote = promotion(settings, trained, override) if env == PRODUCTION else None
    repo = gitops_repo(settings)
    expected = verify.expected_of(values)
    check = verify.plan(repo, expected)  # its settings are checked before anything is written
    outcome = transact(repo, deploy_change(settings, env, values, promote))
    report(outcome, f"deploy {settings.project}/{env}")
    # The registry follows the GitOps repo, never leads it: the alias moves once the values are in.
    lineage = values["lineage"]
    model_registry.set_alias(
        settings.mlflow_tracking_uri, lineage.get("modelName"), lineage.get("modelVersion"), env
    )
    print(f"environment: {env}")
    print(f"preview:     http://{host}/")
    print(
        f"mlflow run:  {(trained.run_url if trained else None) or lineage.get('mlflowRunId', '-')}"
    )
    print(f"image:       {image.reference}")
    print(f"values:      {redact(repo)} envs/{settings.project}/{env}/values.yaml")
    # Green only once the environment serves this deploy (or the check is off).
    verify.wait(check, expected, outcome.revision)
