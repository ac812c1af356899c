"""`make reproduce` (`python -m deploy.reproduce`): retrain the commit from scratch in a clean
checkout and compare the results with what `make train` produced (and dvc.lock records).

The retraining sees only what git and the DVC cache hold for the commit: a checkout of HEAD that
borrows the workspace's git objects, the raw data checked out by DVC from the workspace's cache,
then an empty temporary DVC cache, so neither cached outputs nor the run-cache can stand in for
training. The one exception is an imported source that a scheduled retraining updated
(`RETRAIN=true make train`): its new pointer, which CI does not commit, replaces the commit's.
Predictions on the frozen test split and every metric must agree within `reproduce.tolerance`;
the model file must be byte-identical when `reproduce.strict` is set (deploy/compare.py). The
verdict goes to the terminal, to build/reproduce.json (a CI artifact), onto the MLflow run of
build/lineage.json, and into the model card.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from {{ cookiecutter.__package }}.errors import ProjectError, run
from {{ cookiecutter.__package }}.paths import (
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
)

from . import mlflow_client, model_card
from .artifacts import ReproduceRecord, TrainRecord
from .commands import dvc, run_command
from .compare import (
    Check,
    compare_metrics,
    compare_model,
    compare_predictions,
    describe_status,
    max_abs_diff,
    table,
)
from .lineage import sha256_file
from .params import ReproduceParams, load_pipeline_params
from .retrain import imported
from .settings import load_settings

# ---- preconditions ---------------------------------------------------------------------------


def check_workspace_matches_lock(root: Path) -> None:
    """The outputs to compare must be the ones dvc.lock records for the current data and params."""
    if not (root / LOCK_FILE).is_file():
        raise ProjectError(f"{LOCK_FILE}: not found; run `make train` first")
    changed = describe_status(json.loads(dvc("status", "--json", cwd=root) or "{}"))
    if changed:
        raise ProjectError(
            "the workspace does not match dvc.lock (data, params or code changed since the last "
            "training); run `make train` (and `dvc add` for changed raw data), then reproduce:\n  "
            + "\n  ".join(changed)
        )


def pipeline_outputs(lock: dict) -> list[str]:
    return [
        out["path"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])
    ]


def updated_imports(root: Path, changed: list[str]) -> list[str]:
    """The pointers among `changed` that a scheduled retraining's `dvc update` moved: the data
    `make train` trained on, which CI cannot commit. The clean checkout takes them as they are."""
    pointers = {path.relative_to(root).as_posix() for path in imported(root)}
    return [path for path in changed if path in pointers]


def uncommitted_inputs(root: Path, outputs: list[str]) -> list[str]:
    """Tracked files that differ from HEAD, except dvc.lock and pipeline outputs (metrics):
    the clean checkout would not see them, so the comparison would not be like for like."""
    changed = run_command(["git", "diff", "--name-only", "HEAD", "--"], root).split()
    produced = [LOCK_FILE.as_posix(), *outputs]
    return [
        path
        for path in changed
        if not any(path == out or path.startswith(out.rstrip("/") + "/") for out in produced)
    ]


# ---- the isolated retraining ----------------------------------------------------------------


def clean_checkout(root: Path, commit: str, dest: Path) -> None:
    """A repository that borrows the workspace's objects (what `git clone --shared` does), with
    no refs or config of its own: any local commit (even a detached CI HEAD) can be checked out,
    and the user's repository is never written to. A clone would also record the workspace's
    branch in its config, where git writes a quote in the name as `\\"`, after which Dulwich
    (DVC's git library) takes a `;` or `#` for a comment and cannot read the file."""

    def git_path(name: str) -> Path:
        command = ["git", "rev-parse", "--path-format=absolute", "--git-path", name]
        return Path(run_command(command, root).strip())

    run_command(["git", "init", "--quiet", str(dest)], root)
    (dest / ".git" / "objects" / "info" / "alternates").write_text(f"{git_path('objects')}\n")
    if git_path("shallow").is_file():  # a shallow CI clone: its history ends there
        shutil.copyfile(git_path("shallow"), dest / ".git" / "shallow")
    run_command(["git", "checkout", "--quiet", "--detach", commit], dest)


def dvc_config(checkout: Path, scratch: Path, cache: Path) -> None:
    """The checkout's DVC cache, and DVC's state in the temp dir (by default it goes to a
    per-path directory under /var/tmp that nothing would clean up). Files are copies, never
    links: DVC may change permissions of linked workspace files, never of our cache."""
    (checkout / ".dvc" / "config.local").write_text(
        f"[core]\n    site_cache_dir = {scratch / 'site'}\n"
        f"[cache]\n    dir = {cache}\n    type = copy\n",
        encoding="utf-8",
    )


def restore_raw_data(checkout: Path, cache: Path, scratch: Path) -> list[str]:
    """Check out every `.dvc`-tracked file of the commit from the workspace's DVC cache, then
    give the checkout an empty cache of its own."""
    pointers = run_command(["git", "ls-files", "--", "*.dvc"], checkout).split()
    dvc_config(checkout, scratch, cache)
    try:
        dvc("checkout", "--quiet", "--", *pointers, cwd=checkout)
    except ProjectError as error:
        raise ProjectError(
            f"the raw data is not in the DVC cache {cache}; run `make setup`\n{error}"
        ) from None
    dvc_config(checkout, scratch, scratch / "cache")
    return pointers


def retrain(checkout: Path) -> None:
    # The Makefile's PYTHONPATH points at the workspace's code: the stages must run the commit's.
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    # --force runs every stage and bypasses the run-cache (which is empty here anyway).
    dvc("repro", "--force", cwd=checkout, env=env)


# ---- comparisons ----------------------------------------------------------------------------


def compare(root: Path, checkout: Path, params: ReproduceParams) -> list[Check]:
    metrics = [json.loads((base / METRICS_FILE).read_text("utf-8")) for base in (root, checkout)]
    return [
        Check("outputs vs dvc.lock", "match", "-", "-", True),
        *compare_predictions(
            root / PREDICTIONS_FILE, checkout / PREDICTIONS_FILE, params.tolerance
        ),
        *compare_metrics(*metrics, params.tolerance),
        compare_model(root / MODEL_FILE, checkout / MODEL_FILE, params.strict),
    ]


# ---- output ---------------------------------------------------------------------------------


def json_number(value: float | None) -> float | str | None:
    """Strict JSON has no Infinity/NaN (a missing value is an infinite difference)."""
    return value if value is None or math.isfinite(value) else str(value)


def tag_lineage_run(root: Path, tracking_uri: str, reproducible: bool, worst: float) -> str:
    """Put the verdict on the MLflow run `make train` logged for this very model file."""
    try:
        trained = TrainRecord.read(root)
    except ProjectError as error:
        return f"mlflow: {error}; verdict not tagged"
    if trained is None:
        return "mlflow: no build/lineage.json (run `make train`); verdict not tagged"
    if trained.identity.get("model_sha256") != sha256_file(root / MODEL_FILE):
        return "mlflow: build/lineage.json describes another model (run `make train`); not tagged"
    with mlflow_client.one_line_errors(tracking_uri):  # mlflow is imported only now: slow
        client = mlflow_client.client(tracking_uri)
        client.set_tag(trained.mlflow_run_id, "reproducible", str(reproducible).lower())
        client.set_tag(trained.mlflow_run_id, "reproduce_max_abs_diff", repr(worst))
    return f"mlflow: tagged run {trained.mlflow_run_id} reproducible={str(reproducible).lower()}"


# ---- entry point ----------------------------------------------------------------------------


def reproduce(root: Path, params: ReproduceParams, commit: str, updates: list[str]) -> list[Check]:
    """Retrain `commit`, with the `updates` pointers of the workspace, in a temporary clean
    checkout and compare; the temp dir always goes."""
    cache = Path(dvc("cache", "dir", cwd=root).strip())
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        checkout = Path(scratch) / "checkout"
        clean_checkout(root, commit, checkout)
        for pointer in updates:
            shutil.copyfile(root / pointer, checkout / pointer)
        if updates:
            print(f"reproduce: with {', '.join(updates)} as the scheduled `dvc update` left it")
        restored = restore_raw_data(checkout, cache, Path(scratch))
        print(f"reproduce: retraining {commit[:12]} in a clean checkout ({', '.join(restored)})")
        retrain(checkout)
        return compare(root, checkout, params)


def main() -> None:
    started = time.monotonic()
    settings = load_settings()
    root = settings.root
    params = load_pipeline_params(root).reproduce
    commit = run_command(["git", "rev-parse", "--verify", "HEAD"], root).strip()
    model = root / MODEL_FILE
    base = {
        "commit": commit,
        "tolerance": params.tolerance,
        "strict": params.strict,
        "model_sha256": sha256_file(model) if model.is_file() else "",
    }
    try:
        check_workspace_matches_lock(root)
        lock = yaml.safe_load((root / LOCK_FILE).read_text(encoding="utf-8")) or {}
        changed = uncommitted_inputs(root, pipeline_outputs(lock))
        updates = updated_imports(root, changed)
        dirty = [path for path in changed if path not in updates]
        if dirty:
            raise ProjectError(
                f"uncommitted changes to {', '.join(dirty)}: reproduce retrains the commit in a "
                "clean checkout; commit them (then `make train`) first"
            )
        checks = reproduce(root, params, commit, updates)
    except ProjectError as error:
        ReproduceRecord(**base, verdict="fail", failures=[str(error)]).write(root)
        raise

    failures = [c.failure for c in checks if c.failure]
    worst = max_abs_diff(checks)
    verdict = "fail" if failures else "pass"
    ReproduceRecord(
        **base,
        verdict=verdict,
        max_abs_diff=json_number(worst),
        failures=failures,
        checks=[{**asdict(c), "abs_diff": json_number(c.abs_diff)} for c in checks],
        seconds=round(time.monotonic() - started, 1),
    ).write(root)
    print(table(checks))
    print(tag_lineage_run(root, settings.mlflow_tracking_uri, not failures, worst))
    print(model_card.log(root, settings.mlflow_tracking_uri))  # the card gains the verdict
    print(
        f"reproduce: {verdict.upper()} (max abs diff {worst:.3g}; report {ReproduceRecord.location()})"
    )
    if failures:
        raise ProjectError("not reproducible:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    run(main)
