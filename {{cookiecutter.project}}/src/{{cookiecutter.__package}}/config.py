"""params.yaml, typed and checked: a missing, misspelt or mistyped key stops the run with its name.

One block per DVC stage. The `reproduce` and `gate` blocks belong to the delivery toolkit, which
checks them with the same rules (deploy/params.py); the stages here read their own blocks only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ProjectError
from .paths import PARAMS_FILE

Task = Literal["classification", "regression"]
# What evaluate.py computes for each task (roc_auc when the test split has every class), and
# the default metric of a task: switching data.task switches the defaults with it.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "log_loss", "roc_auc"),
    "regression": ("r2", "rmse", "mae"),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


class Block(BaseModel):
    """A params.yaml block: strict types (`"0.2"` is not a number), no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(Block):
    path: str
    target: str
    task: Task
    drop: list[str] = []  # columns that are not features (ids, timestamps, ...)
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class TrainParams(Block):
    model: str
    hyperparameters: dict[str, Any] = {}
    seed: int = 42
    n_jobs: int = Field(1, ge=1)


class EvaluateParams(Block):
    primary_metric: str  # missing or null: DEFAULT_METRIC of data.task


class Params(Block):
    # Blocks of the delivery toolkit pass through here; deploy/params.py checks them.
    model_config = ConfigDict(extra="allow")

    data: DataParams
    train: TrainParams
    evaluate: EvaluateParams

    @model_validator(mode="before")
    @classmethod
    def metric_follows_task(cls, raw: Any) -> Any:
        return with_task_defaults(raw)

    @model_validator(mode="after")
    def metric_is_computed(self) -> Params:
        check_metric("evaluate.primary_metric", self.evaluate.primary_metric, self.data.task)
        return self


def with_task_defaults(raw: Any) -> Any:
    """The raw params with evaluate.primary_metric defaulting to the task's metric."""
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        task = raw["data"].get("task")
        evaluate = raw.get("evaluate") or {}
        if isinstance(evaluate, dict) and task in DEFAULT_METRIC:
            defaults = {"primary_metric": DEFAULT_METRIC[task]}
            raw = {**raw, "evaluate": with_defaults(evaluate, defaults)}
    return raw


def with_defaults(block: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The block with its missing or null keys taken from `defaults`."""
    return {**defaults, **{key: value for key, value in block.items() if value is not None}}


def check_metric(where: str, metric: str, task: str) -> None:
    if metric not in METRICS[task]:
        raise ValueError(f"{where}: {metric!r} is not a {task} metric ({', '.join(METRICS[task])})")


def known_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed where `loc` points (for "unknown key" messages)."""
    for part in loc[:-1]:
        field = schema.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        schema = field.annotation
    return list(schema.model_fields)


def describe(error: ValidationError, path: Path, schema: type[BaseModel]) -> str:
    """The first problem as `params.yaml: block.key: rule (got value)`. An unknown key comes
    first: a misspelt key is also a missing one, and its spelling is the news."""
    problems = error.errors(include_url=False)
    first = min(problems, key=lambda problem: problem["type"] != "extra_forbidden")
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "value_error":  # our own validators name the key themselves
        return f"{path}: {first['msg'].removeprefix('Value error, ')}"
    if not where:
        return f"{path}: {first['msg']}"
    if first["type"] == "extra_forbidden":
        expected = ", ".join(known_keys(schema, first["loc"]))
        return f"{path}: {where}: unknown key (expected one of: {expected})"
    if first["type"] == "missing":
        return f"{path}: {where}: missing"
    return f"{path}: {where}: {first['msg']} (got {first['input']!r})"


def read_params(path: Path = PARAMS_FILE) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ProjectError(f"{path}: not valid YAML: {error}") from None


P = TypeVar("P", bound=Params)


def load_params(path: Path = PARAMS_FILE, schema: type[P] = Params) -> P:
    """params.yaml checked against `schema` (the delivery toolkit passes its extended one)."""
    try:
        return schema.model_validate(read_params(path))
    except ValidationError as error:
        # Named as the user knows it, wherever the toolkit runs from.
        raise ProjectError(describe(error, Path(path.name), schema)) from None
