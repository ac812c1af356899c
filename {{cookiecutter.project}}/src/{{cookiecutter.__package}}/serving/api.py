"""The API's types, derived from the schema.json stored with the model: request records and
batches, predictions, and the lineage that /metadata serves.

`make bento` writes the model store entry (the pickled pipeline, its schema.json, its model card
and the lineage as metadata); the service reads it back with the functions here.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from .inputs import Columns, Rows

# The package is the project name with '-' -> '_'; project names never contain '_' (DNS label),
# so the inverse is exact. `make bento` stores the model under the project name.
MODEL_NAME = __name__.split(".")[0].replace("_", "-")
# In a built Bento (<bento>/src/<package>/serving/api.py), the file that names its model.
BENTO_INFO = Path(__file__).resolve().parents[3] / "bento.yaml"
MODEL_FILE = "model.pkl"
SCHEMA_FILE = "schema.json"
CARD_FILE = "model_card.md"  # Markdown, written by the delivery toolkit (deploy/model_card.py)
PROFILE_FILE = "profile.json"  # training distributions for the metrics (deploy/profile.py)

# A finite float; strict so that "1.5" and true are type errors rather than silently coerced.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ModelLineage(BaseModel):
    """Where the model comes from, stored with it by `make bento` (from the MLflow run)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str
    model_version: str
    model_alias: str
    mlflow_run_id: str
    mlflow_tracking_uri: str  # without credentials: /metadata serves it to every client
    git_commit: str
    git_branch: str
    data_md5: str


class Lineage(ModelLineage):
    """What /metadata answers: the stored lineage, the model's tag in the BentoML store and the
    image reference the chart sets in BENTO_IMAGE (empty outside a cluster)."""

    bento_model: str
    image: str = ""


def feature_type(feature: dict[str, Any]) -> Any:
    """Pydantic type of one feature; null is allowed because the pipeline imputes it."""
    if feature["kind"] == "categorical":
        levels = tuple(str(level) for level in feature["categories"])
        return Literal[levels] | None  # type: ignore[valid-type]
    return Number | None


def record_model(schema: dict[str, Any]) -> type[BaseModel]:
    """One input record: every feature required, under its column name, nothing else allowed.

    Column names may contain spaces or collide once slugged, so fields get positional Python
    names (f0, f1, ...) and the column name as alias; errors and the OpenAPI schema use the alias.
    """
    fields: dict[str, Any] = {
        f"f{index}": (feature_type(feature), Field(alias=feature["name"]))
        for index, feature in enumerate(schema["features"])
    }
    config = ConfigDict(extra="forbid", serialize_by_alias=True)
    return create_model("Record", __config__=config, **fields)


def batch_model(record: type[BaseModel], max_batch: int) -> type[BaseModel]:
    """A batch request: `{"records": [...]}` with 1..max_batch records."""
    records = Annotated[list[record], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    return create_model("Batch", __config__=ConfigDict(extra="forbid"), records=(records, Field()))


def columns_model(schema: dict[str, Any], max_batch: int) -> type[BaseModel]:
    """A columnar batch: `{"columns": {"<feature>": [value, ...], ...}}`, every feature required,
    each a list of 1..max_batch values (null allowed) and all of the same length. A fifth of the
    records' parsing cost: the body holds no key per value and no object per row."""

    names = [feature["name"] for feature in schema["features"]]

    def same_length(columns: BaseModel) -> BaseModel:
        values = columns.__dict__.values()
        lengths = {name: len(column) for name, column in zip(names, values, strict=True)}
        first, count = next(iter(lengths.items()))
        for name, length in lengths.items():
            if length != count:
                raise ValueError(
                    f"every column needs the same number of values: {name!r} has {length}, "
                    f"{first!r} has {count}"
                )
        return columns

    length = Field(min_length=1, max_length=max_batch)
    fields: dict[str, Any] = {
        f"f{index}": (Annotated[list[feature_type(feature)], length], Field(alias=feature["name"]))  # type: ignore[misc]
        for index, feature in enumerate(schema["features"])
    }
    columns = create_model(
        "Columns",
        __config__=ConfigDict(extra="forbid", serialize_by_alias=True),
        __validators__={"same_length": model_validator(mode="after")(same_length)},
        **fields,
    )
    return create_model(
        "ColumnBatch", __config__=ConfigDict(extra="forbid"), columns=(columns, Field())
    )


def label_type(schema: dict[str, Any]) -> Any:
    """Type of one prediction: a class label for classifiers, a number for regressors."""
    if schema["task"] == "classification":
        return Literal[tuple(schema["classes"])]  # type: ignore[valid-type]
    return float


def prediction_model(schema: dict[str, Any]) -> type[BaseModel]:
    """One prediction; classifiers add the probability of every class (keyed by class label)."""
    fields: dict[str, Any] = {"prediction": (label_type(schema), Field())}
    if schema["task"] == "classification":
        fields["probabilities"] = (dict[str, float], Field())
    return create_model("Prediction", **fields)


def column_predictions_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A columnar batch's answer: the predictions in row order; classifiers add, per class label,
    the probabilities in row order; and the model version."""
    fields: dict[str, Any] = {"predictions": (list[label_type(schema)], Field())}  # type: ignore[misc]
    if schema["task"] == "classification":
        fields["probabilities"] = (dict[str, list[float]], Field())
    return create_model("ColumnPredictions", **fields, model_version=(str, Field()))


@dataclass(frozen=True)
class Api:
    """Everything the service derives from one schema."""

    schema: dict[str, Any]
    Record: type[BaseModel]
    Batch: type[BaseModel]
    Prediction: type[BaseModel]
    SinglePrediction: type[BaseModel]  # a Prediction and the model version
    Predictions: type[BaseModel]  # a batch's predictions and the model version
    ColumnBatch: type[BaseModel]
    ColumnPredictions: type[BaseModel]

    @property
    def columns(self) -> list[str]:
        return [feature["name"] for feature in self.schema["features"]]

    @property
    def numeric(self) -> list[bool]:
        return [feature["kind"] == "numeric" for feature in self.schema["features"]]

    @property
    def is_classifier(self) -> bool:
        return self.schema["task"] == "classification"

    def rows(self, records: list[BaseModel]) -> Rows:
        """Validated records as rows of values in the training column order.

        A validated record's __dict__ holds its fields f0, f1, ... in that order, whatever the
        order of the JSON keys, and nothing else (extra="forbid"): a quarter of the cost of
        reading 30,000 attributes one by one.
        """
        return [list(record.__dict__.values()) for record in records]

    def column_values(self, batch: BaseModel) -> Columns:
        """A validated columnar batch's value lists in the training column order (fields f0,
        f1, ..., as for rows)."""
        return list(batch.columns.__dict__.values())  # type: ignore[attr-defined]


def derive(schema: dict[str, Any], max_batch: int) -> Api:
    record = record_model(schema)
    prediction = prediction_model(schema)
    version = (str, Field())
    return Api(
        schema=schema,
        Record=record,
        Batch=batch_model(record, max_batch),
        Prediction=prediction,
        SinglePrediction=create_model(
            "SinglePrediction", __base__=prediction, model_version=version
        ),
        Predictions=create_model(
            "Predictions", predictions=(list[prediction], Field()), model_version=version
        ),
        ColumnBatch=columns_model(schema, max_batch),
        ColumnPredictions=column_predictions_model(schema),
    )


def model_tag() -> str:
    """The model to serve: in a built Bento, the one it was built with, even from a store that
    holds newer ones since; while `make bento` builds it, the newest, which it has just stored."""
    if not BENTO_INFO.is_file():
        return f"{MODEL_NAME}:latest"
    info = yaml.safe_load(BENTO_INFO.read_text(encoding="utf-8"))
    services = info.get("services", [])
    models = info.get("models", []) + [m for s in services for m in s.get("models", [])]
    [tag] = {m["tag"] for m in models if m["tag"].startswith(f"{MODEL_NAME}:")}
    return tag


def stored(model: Any) -> Any:
    """The store entry of the model: a `bentoml.models.BentoModel` reference at import time (which
    `make bento` must have written), the entry itself inside the service's workers."""
    if hasattr(model, "path_of"):
        return model
    if model.stored is None:
        raise RuntimeError(f"model {model.tag} is not in the BentoML model store; run `make bento`")
    return model.stored


def load_schema(model: Any) -> dict[str, Any]:
    return json.loads(Path(stored(model).path_of(SCHEMA_FILE)).read_text(encoding="utf-8"))


def load_profile(model: Any) -> dict[str, Any] | None:
    """The training profile, or None for a model stored without one (the metrics then bin less)."""
    path = Path(stored(model).path_of(PROFILE_FILE))
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_card(model: Any) -> str:
    return Path(stored(model).path_of(CARD_FILE)).read_text(encoding="utf-8")


def load_model(model: Any) -> Any:
    """The native scikit-learn pipeline (MLflow's pyfunc wrapper halves throughput)."""
    with open(stored(model).path_of(MODEL_FILE), "rb") as file:
        return pickle.load(file)  # noqa: S301 - our own model store, written by make bento


def lineage(model: Any) -> Lineage:
    entry = stored(model)
    image = os.environ.get("BENTO_IMAGE", "")
    return Lineage(bento_model=str(entry.tag), image=image, **entry.info.metadata["lineage"])
