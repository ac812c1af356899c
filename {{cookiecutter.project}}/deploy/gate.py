"""The production quality gate: a new model must not be worse than the one in production,
measured on the same rows: the new model's test split (deploy/champion.py scores both).

Next to production's values lives its record, `envs/<project>/production/gate.json`: the gate
metric and score of the model deployed there, and the comparison that let it in. When the
production model cannot be re-scored (no registry is reachable), the gate falls back to that
recorded score and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from {{ cookiecutter.__package }}.errors import ProjectError

from .champion import Comparison
from .params import GateParams

GATE_FILE = "gate.json"


class GateFailed(ProjectError):
    """The new model is worse than production's, or cannot be compared: nothing is deployed."""


class GateRecord(BaseModel):
    """gate.json, as deploys (and rollbacks) write it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    metric: str
    value: float | None
    higher_is_better: bool
    modelVersion: str | None = None
    mlflowRunId: str | None = None
    gitCommit: str | None = None
    comparison: dict[str, Any] | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str
    details: list[str]  # the other metrics side by side: shown, not gating


def read_record(env_dir: Path) -> GateRecord | None:
    """Production's record; a corrupt or hand-edited one is refused, never trusted silently."""
    path = env_dir / GATE_FILE
    if not path.is_file():
        return None
    try:
        return GateRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as error:
        first = str(error).splitlines()[0]
        where = "/".join(path.parts[-4:])  # envs/<project>/production/gate.json
        raise ProjectError(
            f"{where} is not a record a deploy wrote ({first}): restore it from the GitOps "
            "history, or roll back (`make rollback`)"
        ) from None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def threshold(gate: GateParams, old: float) -> tuple[str, float]:
    if gate.higher_is_better:
        return ">=", old - gate.max_regression
    return "<=", old + gate.max_regression


def side_by_side(comparison: Comparison, metric: str) -> list[str]:
    return [
        f"  {name}: production {fmt(comparison.champion.get(name))}, this change {fmt(value)}"
        for name, value in comparison.challenger.items()
        if name != metric
    ]


def judge(
    gate: GateParams,
    comparison: Comparison,
    baseline: GateRecord | None,
    override: str | None = None,
) -> Verdict:
    metric = gate.metric
    new = comparison.challenger.get(metric)
    details = side_by_side(comparison, metric)
    if new is None:
        summary = (
            f"gate {metric}: the new model has no '{metric}' metric (build/lineage.json): FAIL"
        )
        return Verdict(False, summary, details)
    if baseline is None:
        return Verdict(True, f"gate {metric}: {fmt(new)}, no production model yet: PASS", details)
    if metric in comparison.champion:
        old = comparison.champion[metric]
        rows = comparison.rows
        measured = (
            f"production v{comparison.champion_version} scores {fmt(old)}, this change scores "
            f"{fmt(new)} on the same {rows} rows (split md5 {comparison.split_md5[:12]})"
        )
    elif comparison.champion_version is not None:
        # The champion is known but cannot score the new data: no like-for-like comparison.
        reason = f"gate {metric}: no comparison possible: {comparison.why_not}"
        if override:
            return Verdict(True, f"{reason}; overridden ({override}): PASS", details)
        return Verdict(
            False, f"{reason}; deploy with GATE_OVERRIDE=<reason> to accept: FAIL", details
        )
    else:
        old = baseline.value if baseline.metric == metric else None
        if old is None:
            summary = f"gate {metric}: {fmt(new)}, production has no recorded {metric}: PASS"
            return Verdict(True, summary, details)
        measured = (
            f"production v{baseline.modelVersion} not re-scored ({comparison.why_not}); its "
            f"recorded {metric} is {fmt(old)}, this change scores {fmt(new)}"
        )
    rule, bound = threshold(gate, old)
    passed = new >= bound if gate.higher_is_better else new <= bound
    verdict = "PASS" if passed else "FAIL"
    summary = (
        f"gate {metric}: {measured}: required {rule} {fmt(bound)} "
        f"(max_regression {gate.max_regression}): {verdict}"
    )
    return Verdict(passed, summary, details)


def record(
    gate: GateParams, comparison: Comparison, lineage: dict[str, Any], verdict: Verdict
) -> str:
    """The gate.json text stored with production: the baseline of the next deploy."""
    data = GateRecord(
        metric=gate.metric,
        value=comparison.challenger.get(gate.metric),
        higher_is_better=gate.higher_is_better,
        modelVersion=lineage.get("modelVersion"),
        mlflowRunId=lineage.get("mlflowRunId"),
        gitCommit=lineage.get("gitCommit"),
        comparison=comparison.to_json(),
        verdict=verdict.summary,
    )
    return json.dumps(data.model_dump(exclude_none=True), indent=2, sort_keys=True) + "\n"
