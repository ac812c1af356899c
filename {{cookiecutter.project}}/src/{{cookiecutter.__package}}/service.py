"""The model's HTTP API: a BentoML service whose request schema comes from the model itself.

The request model is derived at import time from the `schema.json` stored next to the model in
the BentoML model store (written by `make bento`), so a model trained on another CSV gets a
correct, validated API with no code change. Serve it with `make serve`; see docs/serving.md.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, create_model

from .fastpath import Rows, model_input

# The package is the project name with '-' -> '_'; project names never contain '_' (DNS label),
# so the inverse is exact. `make bento` stores the model under the project name.
PACKAGE = __name__.rpartition(".")[0] or __name__
MODEL_NAME = PACKAGE.replace("_", "-")
MODEL_FILE = "model.pkl"
SCHEMA_FILE = "schema.json"

# Limits that keep one request from taking the service down; override per deployment.
MAX_BATCH = int(os.environ.get("SERVICE_MAX_BATCH", "1000"))
MAX_BODY_BYTES = int(os.environ.get("SERVICE_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
WORKERS = int(os.environ.get("SERVICE_WORKERS", "2"))

# A finite float; strict so that "1.5" and true are type errors rather than silently coerced.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


# ----------------------------------------------------------------------------- request models
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


# ------------------------------------------------------------------------------ the service
class Lineage(BaseModel):
    """Where the served model comes from; `make bento` copies it from the MLflow run."""

    model_name: str
    model_version: str
    model_alias: str
    mlflow_run_id: str
    mlflow_tracking_uri: str
    git_commit: str
    git_branch: str
    data_md5: str
    bento_model: str


def load_schema(model: bentoml.models.BentoModel) -> dict[str, Any]:
    stored = model.stored
    if stored is None:
        raise RuntimeError(f"model {model.tag} is not in the BentoML model store; run `make bento`")
    return json.loads(Path(stored.path_of(SCHEMA_FILE)).read_text(encoding="utf-8"))


MODEL = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")
SCHEMA = load_schema(MODEL)
COLUMNS: list[str] = [feature["name"] for feature in SCHEMA["features"]]
FIELDS = [f"f{index}" for index in range(len(COLUMNS))]  # see record_model()
NUMERIC: list[bool] = [feature["kind"] == "numeric" for feature in SCHEMA["features"]]
IS_CLASSIFIER = SCHEMA["task"] == "classification"
Record = record_model(SCHEMA)
Batch = batch_model(Record, MAX_BATCH)
Prediction = prediction_model(SCHEMA)


class Predictions(BaseModel):
    predictions: list[Prediction]  # type: ignore[valid-type]
    model_version: str


class SinglePrediction(Prediction):  # type: ignore[valid-type, misc]
    model_version: str


# Served on /metrics next to BentoML's own request metrics (which count 4xx refusals by code);
# BentoML sets up prometheus_client's multiprocess mode before it imports this module.
PREDICTIONS = Counter(
    "model_predictions",
    "Records predicted, by endpoint and outcome",
    labelnames=["endpoint", "outcome"],
)
LATENCY = Histogram(
    "model_predict_seconds",
    "Time spent in the model per request, by endpoint and outcome",
    labelnames=["endpoint", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def rows_of(records: list[BaseModel]) -> Rows:
    """Validated records as rows of values in the training column order."""
    return [[getattr(record, field) for field in FIELDS] for record in records]


class RequestGuard:
    """ASGI middleware refusing, before anything parses them, bodies that are not JSON (415:
    BentoML's multipart parser answers 500 to malformed forms) or over the size limit (413).

    A declared Content-Length is checked up front (the server enforces it); a chunked body is
    buffered up to the limit and replayed to the app.
    """

    # Answering while the client still sends makes its TCP stack see a reset instead of the 413,
    # so the rest of a body up to this many times the limit is read (and dropped) first.
    DRAIN_FACTOR = 4
    JSON_TYPES = (b"", b"application/json")

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type not in self.JSON_TYPES:
            return await self.refuse(receive, send, 415, "Content-Type must be application/json")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                return await self.refuse(receive, send, 413, self.too_large)
            return await self.app(scope, receive, send)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self.refuse(receive, send, 413, self.too_large, messages[-1])
            if not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    @property
    def too_large(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"

    async def refuse(
        self, receive: Any, send: Any, status: int, error: str, last: dict | None = None
    ) -> None:
        more_body, drained = last is None or last.get("more_body", False), 0
        while more_body and drained <= self.max_bytes * self.DRAIN_FACTOR:
            message = await receive()
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# For small CPU models on 2 cores: 2 workers, async endpoints calling the model inline (no thread
# hop; no adaptive batching: it answered 503 under load) and no access log. `make bench` measures
# the result against `mlflow models serve` and FastAPI on this model.
@bentoml.service(
    name=MODEL_NAME,
    workers=WORKERS,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
class Model:
    bento_model = MODEL

    def __init__(self) -> None:
        stored = self.bento_model
        with open(stored.path_of(MODEL_FILE), "rb") as file:
            # The native scikit-learn pipeline: MLflow's pyfunc wrapper halves throughput.
            self.model = pickle.load(file)  # noqa: S301 - our own model store, written by make bento
        self.lineage = Lineage(bento_model=str(stored.tag), **stored.info.metadata["lineage"])
        self.classes = [str(label) for label in getattr(self.model, "classes_", [])]
        # The NumPy preprocessing is checked against the pipeline here, at load.
        self.predictor, self.prepare = model_input(self.model, COLUMNS, NUMERIC)
        fast = self.predictor is not self.model
        path = "NumPy preprocessing, checked equal" if fast else "pipeline on a DataFrame"
        print(f"model input: {path}", file=sys.stderr, flush=True)
        # Move everything loaded so far out of the garbage collector's view: without this, full
        # collections over the model's objects pushed p99 from ~7 ms to ~80 ms. Then collect
        # less often: a request's garbage goes by reference counting, and what the server
        # imports later still made the default thresholds stall a worker for tens of ms several
        # times a second (measured at 8 clients: p99 70-110 ms -> 11-17 ms).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 50, 1000)

    def predict_records(self, endpoint: str, records: list[BaseModel]) -> list[dict[str, Any]]:
        start = time.perf_counter()
        outcome = "error"
        try:
            results = self.run_model(rows_of(records))
            outcome = "ok"
            return results
        finally:
            LATENCY.labels(endpoint=endpoint, outcome=outcome).observe(time.perf_counter() - start)
            PREDICTIONS.labels(endpoint=endpoint, outcome=outcome).inc(len(records))

    def run_model(self, rows: Rows) -> list[dict[str, Any]]:
        inputs = self.prepare(rows)
        if not IS_CLASSIFIER:
            return [{"prediction": float(value)} for value in self.predictor.predict(inputs)]
        probabilities = self.predictor.predict_proba(inputs)
        labels = self.model.classes_[probabilities.argmax(axis=1)].tolist()
        return [
            {"prediction": label, "probabilities": dict(zip(self.classes, row, strict=True))}
            for label, row in zip(labels, probabilities.tolist(), strict=True)
        ]

    @bentoml.api
    async def predict(self, record: Record, /) -> SinglePrediction:  # type: ignore[valid-type]
        """Predict one record: the body is a JSON object with one key per feature column."""
        [result] = self.predict_records("predict", [record])
        return SinglePrediction(**result, model_version=self.lineage.model_version)

    @bentoml.api
    async def predict_batch(self, batch: Batch, /) -> Predictions:  # type: ignore[valid-type]
        """Predict many records in one request: `{"records": [{...}, ...]}`."""
        results = self.predict_records("predict_batch", batch.records)
        return Predictions(predictions=results, model_version=self.lineage.model_version)

    @bentoml.api
    async def metadata(self) -> Lineage:
        """The MLflow run, registered model version and alias, git commit and data hash."""
        return self.lineage


Model.add_asgi_middleware(RequestGuard, max_bytes=MAX_BODY_BYTES)
