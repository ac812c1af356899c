"""Typed access to params.yaml. A missing or misspelt key stops the run with its name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ProjectError
from .paths import PARAMS_FILE

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class DataParams:
    path: str
    target: str
    task: str
    drop: list[str] = field(default_factory=list)
    test_size: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class TrainParams:
    model: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    n_jobs: int = 1


@dataclass(frozen=True)
class EvaluateParams:
    primary_metric: str


@dataclass(frozen=True)
class ReproduceParams:
    tolerance: float = 0.0
    strict: bool = True


@dataclass(frozen=True)
class GateParams:
    metric: str
    higher_is_better: bool = True
    max_regression: float = 0.0


@dataclass(frozen=True)
class Params:
    data: DataParams
    train: TrainParams
    evaluate: EvaluateParams
    reproduce: ReproduceParams
    gate: GateParams


def _block(cls: type, raw: Any, where: str) -> Any:
    """Build one dataclass from a mapping, refusing unknown, missing and mistyped keys."""
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ProjectError(
            f"{where}.{unknown[0]}: unknown key (expected one of: {', '.join(fields)})"
        )
    values = {}
    for name, spec in fields.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ProjectError(f"{where}.{name}: missing")
            continue
        values[name] = _typed(raw[name], spec.type, f"{where}.{name}")
    return cls(**values)


_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _typed(value: Any, annotation: str, where: str) -> Any:
    if annotation.startswith("list"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProjectError(f"{where}: expected a list of column names, got {value!r}")
        return value
    if annotation.startswith("dict"):
        if not isinstance(value, dict):
            raise ProjectError(f"{where}: expected a mapping, got {value!r}")
        return value
    expected = _TYPES[annotation]
    if isinstance(value, bool) and annotation != "bool" or not isinstance(value, expected):
        raise ProjectError(f"{where}: expected {annotation}, got {value!r}")
    return float(value) if annotation == "float" else value


def load_params(path: Path = PARAMS_FILE) -> Params:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ProjectError(f"{path}: not valid YAML: {error}") from None
    where = str(path)
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: expected a mapping of blocks")
    blocks = {f.name: f.type for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(blocks))
    if unknown:
        raise ProjectError(f"{where}: {unknown[0]}: unknown block (expected: {', '.join(blocks)})")
    missing = [name for name in blocks if name not in raw]
    if missing:
        raise ProjectError(f"{where}: {missing[0]}: missing block")
    params = Params(
        data=_block(DataParams, raw["data"], f"{where}: data"),
        train=_block(TrainParams, raw["train"], f"{where}: train"),
        evaluate=_block(EvaluateParams, raw["evaluate"], f"{where}: evaluate"),
        reproduce=_block(ReproduceParams, raw["reproduce"], f"{where}: reproduce"),
        gate=_block(GateParams, raw["gate"], f"{where}: gate"),
    )
    if params.data.task not in TASKS:
        raise ProjectError(
            f"{where}: data.task: {params.data.task!r} is not one of {', '.join(TASKS)}"
        )
    if not 0 < params.data.test_size < 1:
        raise ProjectError(
            f"{where}: data.test_size: {params.data.test_size} must be between 0 and 1"
        )
    return params
