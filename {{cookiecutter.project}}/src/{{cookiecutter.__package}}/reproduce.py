"""`make reproduce`: retrain the commit from scratch in a clean checkout and compare the results
with what `make train` produced (and dvc.lock records).

The retraining sees only what git and the DVC cache hold for the commit: a `git clone --shared`
of HEAD, the raw data copied from the DVC cache by the md5 in its `.dvc` file, and an empty
temporary DVC cache, so neither cached outputs nor the run-cache can stand in for training.
Predictions on the frozen test split and every metric must agree within `reproduce.tolerance`;
the model file must be byte-identical when `reproduce.strict` is set. The verdict goes to the
terminal, to build/reproduce.json (a CI artifact) and onto the MLflow run of build/lineage.json.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import yaml

from .atomic import write_text
from .config import ReproduceParams, load_params
from .errors import ProjectError, run
from .lineage import sha256_file
from .paths import LINEAGE_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, REPRODUCE_REPORT

LOCK_FILE = Path("dvc.lock")


@dataclass(frozen=True)
class Check:
    """One row of the comparison table."""

    name: str
    workspace: str
    reproduced: str
    diff: str
    ok: bool
    failure: str = ""  # what differed and by how much, when not ok
    abs_diff: float | None = None  # numeric difference, for the overall maximum


# ---- preconditions ---------------------------------------------------------------------------


def command(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a git/dvc command; a failure stops with its output (the user's repo is the cause)."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise ProjectError(f"`{' '.join(args[:4])} ...` failed in {cwd}:\n{output}")
    return result.stdout


def dvc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return command([sys.executable, "-m", "dvc", *args], cwd, env)


def describe_status(status: dict) -> list[str]:
    """`dvc status --json` as lines like `prepare: changed deps data/raw/x.csv (modified)`."""
    lines = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # "always changed", "changed command"
                lines.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                for path, state in paths.items():
                    lines.append(f"{stage}: {kind} {path} ({state})")
    return lines


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


def uncommitted_inputs(root: Path, outputs: list[str]) -> list[str]:
    """Tracked files that differ from HEAD, except dvc.lock and pipeline outputs (metrics):
    the clean checkout would not see them, so the comparison would not be like for like."""
    changed = command(["git", "diff", "--name-only", "HEAD", "--"], root).split()
    produced = [LOCK_FILE.as_posix(), *outputs]
    return [
        path
        for path in changed
        if not any(path == out or path.startswith(out.rstrip("/") + "/") for out in produced)
    ]


# ---- the isolated retraining ----------------------------------------------------------------


def clean_checkout(root: Path, commit: str, dest: Path) -> None:
    # --shared borrows the object store: fast, and any local commit (even a detached CI HEAD)
    # can be checked out; the user's repository is never written to.
    command(["git", "clone", "--quiet", "--shared", "--no-checkout", str(root), str(dest)], root)
    command(["git", "checkout", "--quiet", "--detach", commit], dest)


def cache_object(cache: Path, md5: str) -> Path:
    """Where DVC 3 keeps an object in a local cache."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def copy_from_cache(cache: Path, md5: str, target: Path) -> None:
    source = cache_object(cache, md5)
    if not source.is_file():
        raise ProjectError(
            f"{target.name} (md5 {md5}) is not in the DVC cache {cache}; run `make setup`"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # A copy, not a link: DVC may rewrite permissions of workspace files, never of our cache.
    shutil.copyfile(source, target)


def restore_raw_data(checkout: Path, cache: Path) -> list[str]:
    """Materialise every `.dvc`-tracked file of the checkout from the workspace's DVC cache."""
    restored = []
    for pointer in command(["git", "ls-files", "--", "*.dvc"], checkout).split():
        spec = yaml.safe_load((checkout / pointer).read_text(encoding="utf-8"))
        for out in spec.get("outs", []):
            target = (checkout / pointer).parent / out["path"]
            md5 = out["md5"]
            if md5.endswith(".dir"):  # a directory: its manifest lists the files
                manifest = json.loads(cache_object(cache, md5).read_text(encoding="utf-8"))
                for entry in manifest:
                    copy_from_cache(cache, entry["md5"], target / entry["relpath"])
            else:
                copy_from_cache(cache, md5, target)
            restored.append(target.relative_to(checkout).as_posix())
    return restored


def isolate_dvc(checkout: Path, scratch: Path) -> None:
    """An empty cache (no outputs, no run-cache to restore from) and DVC's state in the temp dir
    (by default it goes to a per-path directory under /var/tmp that nothing would clean up)."""
    (checkout / ".dvc" / "config.local").write_text(
        f"[core]\n    site_cache_dir = {scratch / 'site'}\n[cache]\n    dir = {scratch / 'cache'}\n",
        encoding="utf-8",
    )


def retrain(checkout: Path) -> None:
    # The Makefile's PYTHONPATH points at the workspace's code: the stages must run the commit's.
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    # --force runs every stage and bypasses the run-cache (which is empty here anyway).
    dvc("repro", "--force", cwd=checkout, env=env)


# ---- comparisons ----------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:.12g}"


def compare_predictions(ours: Path, theirs: Path, tolerance: float) -> list[Check]:
    """Column by column, row by row: numbers within the tolerance, labels exactly."""
    left, right = pd.read_csv(ours), pd.read_csv(theirs)
    if list(left.columns) != list(right.columns) or len(left) != len(right):
        return [
            Check(
                "predictions shape",
                f"{len(left)} rows {list(left.columns)}",
                f"{len(right)} rows {list(right.columns)}",
                "different",
                False,
                f"predictions: shape or columns differ ({len(left)} vs {len(right)} rows)",
            )
        ]
    checks = []
    rows = f"{len(left)} rows"
    for column in left.columns:
        a, b = left[column], right[column]
        name = f"predictions {column}"
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            diff = (a - b).abs()
            # Both missing is agreement; one missing is an infinite difference.
            diff = diff.mask(a.isna() & b.isna(), 0.0).fillna(math.inf)
            worst = float(diff.max())
            row = int(diff.idxmax())
            ok = worst <= tolerance
            failure = (
                ""
                if ok
                else f"{name}: max abs diff {worst:.3g} > tolerance {tolerance:g} "
                f"(row {row}: {fmt(a[row])} vs {fmt(b[row])}; {(diff > tolerance).sum()} rows over)"
            )
            checks.append(Check(name, rows, rows, f"{worst:.3g}", ok, failure, worst))
        else:
            differ = int((a.astype(str) != b.astype(str)).sum())
            failure = f"{name}: {differ} of {len(a)} labels differ" if differ else ""
            checks.append(Check(name, rows, rows, f"{differ} rows", not differ, failure))
    return checks


def compare_metrics(ours: dict, theirs: dict, tolerance: float) -> list[Check]:
    checks = []
    for name in sorted(set(ours) | set(theirs)):
        label = f"metric {name}"
        if name not in ours or name not in theirs:
            side = "reproduction" if name not in theirs else "workspace"
            checks.append(
                Check(
                    label,
                    str(ours.get(name, "-")),
                    str(theirs.get(name, "-")),
                    "missing",
                    False,
                    f"{label}: missing in the {side}",
                )
            )
            continue
        a, b = float(ours[name]), float(theirs[name])
        diff = 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b)
        diff = math.inf if math.isnan(diff) else diff
        ok = diff <= tolerance
        failure = "" if ok else f"{label}: {fmt(a)} vs {fmt(b)}, abs diff {diff:.3g}"
        checks.append(Check(label, fmt(a), fmt(b), f"{diff:.3g}", ok, failure, diff))
    return checks


def compare_model(ours: Path, theirs: Path, strict: bool) -> Check:
    a, b = sha256_file(ours), sha256_file(theirs)
    same = a == b
    diff = "same" if same else "differs" if strict else "differs (strict off)"
    failure = "" if same or not strict else f"model sha256: {a[:12]} vs {b[:12]} (strict)"
    return Check("model sha256", a[:12], b[:12], diff, same or not strict, failure)


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


def max_abs_diff(checks: list[Check]) -> float:
    return max((c.abs_diff for c in checks if c.abs_diff is not None), default=0.0)


# ---- output ---------------------------------------------------------------------------------


def table(checks: list[Check]) -> str:
    header = ("check", "workspace", "reproduced", "diff", "verdict")
    rows = [header] + [
        (c.name, c.workspace, c.reproduced, c.diff, "ok" if c.ok else "FAIL") for c in checks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def json_number(value: float | None) -> float | str | None:
    """Strict JSON has no Infinity/NaN (a missing value is an infinite difference)."""
    return value if value is None or math.isfinite(value) else str(value)


def write_report(report: dict) -> None:
    write_text(REPRODUCE_REPORT, json.dumps(report, indent=2) + "\n")


def tag_lineage_run(root: Path, reproducible: bool, worst: float) -> str:
    """Put the verdict on the MLflow run `make train` logged for this very model file."""
    try:
        record = json.loads((root / LINEAGE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return f"mlflow: no {LINEAGE_FILE} (run `make train`); verdict not tagged"
    if record.get("identity", {}).get("model_sha256") != sha256_file(root / MODEL_FILE):
        return f"mlflow: {LINEAGE_FILE} describes another model (run `make train`); not tagged"
    from mlflow import MlflowClient  # slow import: only when there is a run to tag

    client = MlflowClient(tracking_uri=record["tracking_uri"])
    client.set_tag(record["run_id"], "reproducible", str(reproducible).lower())
    client.set_tag(record["run_id"], "reproduce_max_abs_diff", repr(worst))
    return f"mlflow: tagged run {record['run_id']} reproducible={str(reproducible).lower()}"


# ---- entry point ----------------------------------------------------------------------------


def reproduce(root: Path, params: ReproduceParams, commit: str) -> list[Check]:
    """Retrain `commit` in a temporary clean checkout and compare; the temp dir always goes."""
    cache = Path(dvc("cache", "dir", cwd=root).strip())
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        checkout = Path(scratch) / "checkout"
        clean_checkout(root, commit, checkout)
        isolate_dvc(checkout, Path(scratch))
        restored = restore_raw_data(checkout, cache)
        print(f"reproduce: retraining {commit[:12]} in a clean checkout ({', '.join(restored)})")
        retrain(checkout)
        return compare(root, checkout, params)


def main() -> None:
    started = time.monotonic()
    root = Path.cwd()
    params = load_params().reproduce
    commit = command(["git", "rev-parse", "--verify", "HEAD"], root).strip()
    report = {"commit": commit, "tolerance": params.tolerance, "strict": params.strict}
    try:
        check_workspace_matches_lock(root)
        lock = yaml.safe_load((root / LOCK_FILE).read_text(encoding="utf-8")) or {}
        dirty = uncommitted_inputs(root, pipeline_outputs(lock))
        if dirty:
            raise ProjectError(
                f"uncommitted changes to {', '.join(dirty)}: reproduce retrains the commit in a "
                "clean checkout; commit them (then `make train`) first"
            )
        checks = reproduce(root, params, commit)
    except ProjectError as error:
        write_report({**report, "verdict": "fail", "failures": [str(error)], "checks": []})
        raise

    failures = [c.failure for c in checks if c.failure]
    worst = max_abs_diff(checks)
    verdict = "fail" if failures else "pass"
    write_report(
        {
            **report,
            "verdict": verdict,
            "max_abs_diff": json_number(worst),
            "failures": failures,
            "checks": [{**asdict(c), "abs_diff": json_number(c.abs_diff)} for c in checks],
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    print(table(checks))
    print(tag_lineage_run(root, not failures, worst))
    print(f"reproduce: {verdict.upper()} (max abs diff {worst:.3g}; report {REPRODUCE_REPORT})")
    if failures:
        raise ProjectError("not reproducible:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    run(main)
