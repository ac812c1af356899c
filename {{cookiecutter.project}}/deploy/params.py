"""params.yaml as the toolkit reads it: the model's blocks plus `reproduce` and `gate`, checked by
the same rules (src/<package>/config.py), so a typo anywhere in the file names its key."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field, model_validator

from {{ cookiecutter.__package }}.config import (
    LOWER_IS_BETTER,
    Block,
    Params,
    check_metric,
    load_params,
    with_defaults,
    with_task_defaults,
)
from {{ cookiecutter.__package }}.paths import PARAMS_FILE


class ReproduceParams(Block):
    tolerance: float = Field(0.0, ge=0)  # max absolute difference in predictions and metrics
    strict: bool = True  # also require a byte-identical model file


class GateParams(Block):
    """The production gate: the default branch's model must not be worse than production's."""

    metric: str  # missing or null: evaluate.primary_metric
    higher_is_better: bool  # missing or null: from the metric (log_loss, rmse, mae: lower)
    max_regression: float = Field(0.0, ge=0)  # how much worse than production is still allowed


class DriftParams(Block):
    """`make drift`: a feature drifts below p_value; the report fails past max_drifted_share."""

    p_value: float = Field(0.01, gt=0, lt=1)
    max_drifted_share: float = Field(0.3, ge=0, le=1)


class PipelineParams(Params):
    model_config = ConfigDict(extra="forbid")

    reproduce: ReproduceParams = ReproduceParams()
    gate: GateParams
    drift: DriftParams = DriftParams()

    @model_validator(mode="before")
    @classmethod
    def gate_follows_metric(cls, raw):
        raw = with_task_defaults(raw)
        if isinstance(raw, dict) and isinstance(raw.get("evaluate"), dict):
            gate = raw.get("gate") or {}
            if isinstance(gate, dict):
                metric = gate.get("metric") or raw["evaluate"].get("primary_metric")
                defaults = {"metric": metric, "higher_is_better": metric not in LOWER_IS_BETTER}
                raw = {**raw, "gate": with_defaults(gate, defaults)}
        return raw

    @model_validator(mode="after")
    def gate_metric_is_computed(self) -> PipelineParams:
        check_metric("gate.metric", self.gate.metric, self.data.task)
        return self


def load_pipeline_params(root: Path = Path()) -> PipelineParams:
    return load_params(root / PARAMS_FILE, PipelineParams)
