"""The production quality gate: a new model must not be worse than the one in production.

The current production model's score lives next to its values, in
`envs/<project>/production/gate.json`, written by the deploy that put it there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package }}.errors import ProjectError

from .params import GateParams

GATE_FILE = "gate.json"


class GateFailed(ProjectError):
    """The new model is worse than production's: nothing is deployed."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str


def read_record(env_dir: Path) -> dict[str, Any]:
    path = env_dir / GATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def judge(gate: GateParams, new: float | None, current: dict[str, Any]) -> Verdict:
    """Compare the new model's metric with the production record (if any)."""
    old = current.get("value") if current.get("metric") == gate.metric else None
    if old is None:
        return Verdict(True, f"gate {gate.metric}: new={new} (no production baseline): PASS")
    if new is None:
        return Verdict(
            False,
            f"gate {gate.metric}: the new model has no '{gate.metric}' metric "
            f"(build/lineage.json) to compare with production {old}: FAIL",
        )
    if gate.higher_is_better:
        threshold = old - gate.max_regression
        passed = new >= threshold
        rule = ">="
    else:
        threshold = old + gate.max_regression
        passed = new <= threshold
        rule = "<="
    verdict = "PASS" if passed else "FAIL"
    return Verdict(
        passed,
        f"gate {gate.metric}: new={new} production={old} "
        f"required {rule} {threshold} (max_regression {gate.max_regression}): {verdict}",
    )


def new_metric(gate: GateParams, metrics: dict[str, Any]) -> float | None:
    value = metrics.get(gate.metric)
    return float(value) if isinstance(value, (int, float)) else None


def record(gate: GateParams, value: float | None, lineage: dict[str, Any]) -> str:
    """The gate.json text stored with production, the baseline for the next deploy."""
    data = {
        "metric": gate.metric,
        "value": value,
        "higher_is_better": gate.higher_is_better,
        "modelVersion": lineage.get("modelVersion"),
        "mlflowRunId": lineage.get("mlflowRunId"),
        "gitCommit": lineage.get("gitCommit"),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
