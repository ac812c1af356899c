"""The comparisons of `make reproduce`, pure functions of the two sets of outputs: predictions
within the tolerance (labels exactly), every metric, and the model file's bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .lineage import sha256_file


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


def max_abs_diff(checks: list[Check]) -> float:
    return max((c.abs_diff for c in checks if c.abs_diff is not None), default=0.0)


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
