"""The pipeline's records in build/: what each make step produced, for the later steps and jobs.

One class per file and one spelling per field. A record from another version of the toolkit, or
edited by hand into another shape, is refused with the file's name, never trusted silently.

    build/lineage.json    make train       the MLflow run and registered model version
    build/model_card.json make train       what the model card says of the data and training
    build/bento.json      make bento       the Bento and the model it packages
    build/image.json      make image       the pushed image and the model inside
    build/reproduce.json  make reproduce   the reproducibility verdict
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from {{ cookiecutter.__package }}.atomic import write_text
from {{ cookiecutter.__package }}.errors import ProjectError

BUILD = Path("build")


@dataclass(frozen=True, kw_only=True)
class Record:
    FILE: ClassVar[str]
    MADE_BY: ClassVar[str]  # the make target that writes it

    @classmethod
    def location(cls, root: Path = Path()) -> Path:
        return root / BUILD / cls.FILE

    @classmethod
    def read(cls, root: Path) -> Self | None:
        """The record, or None when its step has not run in this checkout."""
        path = cls.location(root)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as error:
            raise ProjectError(
                f"{cls.location()}: not a record this toolkit wrote ({error}); "
                f"run `{cls.MADE_BY}` again"
            ) from None

    @classmethod
    def require(cls, root: Path) -> Self:
        found = cls.read(root)
        if found is None:
            raise ProjectError(f"{cls.location()}: not found; run `{cls.MADE_BY}` first")
        return found

    def write(self, root: Path) -> None:
        write_text(self.location(root), json.dumps(dataclasses.asdict(self), indent=2) + "\n")


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """The registered model version a step worked on, and where it came from."""

    model_name: str
    model_version: str
    model_alias: str  # the alias of the branch's environment, set once it is deployed there
    mlflow_run_id: str
    git_commit: str
    git_branch: str
    data_md5: str


@dataclass(frozen=True, kw_only=True)
class TrainRecord(Record, ModelRef):
    FILE = "lineage.json"
    MADE_BY = "make train"

    mlflow_tracking_uri: str
    experiment_id: str
    run_url: str
    metrics: dict[str, float]
    # What makes two trainings the same model version (see deploy/track.py).
    identity: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class ModelCardRecord(Record):
    """The facts of the model card known at training time (deploy/model_card.py renders them
    with the later records: reproducibility verdict, image)."""

    FILE = "model_card.json"
    MADE_BY = "make train"

    mlflow_run_id: str  # the run this card describes
    data_source: str
    data_md5: str
    task: str
    target: str
    features: list[str]
    rows: dict[str, int]  # split -> rows
    # classification: class -> rows (both splits); regression: mean, std, min, max of the target
    target_balance: dict[str, float]
    estimator: str  # params.yaml train.model
    estimator_class: str
    hyperparameters: dict[str, Any]
    seed: int
    split_seed: int
    primary_metric: str
    metrics: dict[str, float]  # on the test split
    # The production model when this one was trained: model_version, mlflow_run_id, metrics.
    champion: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class BentoRecord(Record, ModelRef):
    FILE = "bento.json"
    MADE_BY = "make bento"

    tag: str  # the Bento in the BentoML store
    path: str
    bento_model: str  # the model's tag in the BentoML store
    mlflow_tracking_uri: str  # without credentials


@dataclass(frozen=True, kw_only=True)
class ImageRecord(Record):
    FILE = "image.json"
    MADE_BY = "make image"

    repository: str
    tag: str
    digest: str
    # The model inside, so that a deploy can refuse to pair this image with another run.
    mlflow_run_id: str = ""
    model_version: str = ""

    @property
    def reference(self) -> str:
        """`repository:tag@digest`: the digest pins it, the tag tells people which commit."""
        tag = f":{self.tag}" if self.tag else ""
        return f"{self.repository}{tag}@{self.digest}" if self.digest else f"{self.repository}{tag}"


@dataclass(frozen=True, kw_only=True)
class ReproduceRecord(Record):
    FILE = "reproduce.json"
    MADE_BY = "make reproduce"

    commit: str
    tolerance: float
    strict: bool
    verdict: str  # pass | fail
    model_sha256: str = ""  # the model file the verdict is about (training may precede a commit)
    failures: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    max_abs_diff: float | str | None = None  # "inf" when a value is missing on one side
    seconds: float | None = None
