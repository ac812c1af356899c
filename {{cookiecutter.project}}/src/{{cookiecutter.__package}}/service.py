"""The model's HTTP API: a BentoML service answering with the trained pipeline's predictions.

Its request and response types come from the schema stored with the model (serving/api.py), so
a model trained on another CSV gets a correct, validated API with no code change. `make serve`
serves the Bento that `make bento` built; docs/serving.md lists the endpoints.
"""

from __future__ import annotations

import sys
from typing import Any

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from .serving import api, metrics, predlog, runtime
from .serving.fastpath import model_input
from .serving.guard import COLUMN_FIELD, RECORD_FIELD, RequestGuard, check_range, input_limits
from .serving.inputs import Inputs

MODEL = bentoml.models.BentoModel(api.model_tag())
API = api.derive(api.load_schema(MODEL), runtime.MAX_BATCH)
Record, Batch, ColumnBatch = API.Record, API.Batch, API.ColumnBatch
SinglePrediction, Predictions = API.SinglePrediction, API.Predictions
ColumnPredictions = API.ColumnPredictions
# At import, once per worker process: the metrics' label values are fixed from here on.
METRICS = (
    metrics.PredictionMetrics(API.schema, api.load_profile(MODEL)) if metrics.ENABLED else None
)
PREDICTION_LOG = predlog.from_environment()  # off unless SERVICE_PREDICTION_LOG is set


@bentoml.service(name=api.MODEL_NAME, **runtime.SERVICE_CONFIG)
class Model:
    bento_model = MODEL

    def __init__(self) -> None:
        self.model = api.load_model(self.bento_model)
        self.lineage = api.lineage(self.bento_model)
        self.classes = [str(label) for label in getattr(self.model, "classes_", [])]
        # The estimator on NumPy preprocessing where that is proven equal to the pipeline, else
        # the pipeline on a DataFrame (serving/fastpath.py).
        self.predictor, self.prepare = model_input(self.model, API.columns, API.numeric)
        self.limits = input_limits(self.model, API.columns)
        fast = self.predictor is not self.model
        path = "NumPy preprocessing, checked equal" if fast else "pipeline on a DataFrame"
        print(f"model input: {path}", file=sys.stderr, flush=True)
        runtime.settle_gc()

    def run_model(
        self, inputs: Inputs, field: str = RECORD_FIELD
    ) -> tuple[list[Any], np.ndarray | None]:
        """The predictions (class labels or values) of one request's inputs and, for a classifier,
        their probability rows; the metrics count them."""
        # Finite but extreme floats (1e308) would overflow in the scaler: a 400 naming the field.
        refused = check_range(inputs, API.columns, self.limits, field)
        if refused:
            raise bentoml.exceptions.InvalidArgument(refused)
        prepared = self.prepare(inputs)
        if not API.is_classifier:
            predicted = np.asarray(self.predictor.predict(prepared), dtype=np.float64)
            if METRICS:
                METRICS.observe(inputs, [], predicted)
            return predicted.tolist(), None
        probabilities = self.predictor.predict_proba(prepared)
        labels = self.model.classes_[probabilities.argmax(axis=1)].tolist()
        if METRICS:
            METRICS.observe(inputs, labels, probabilities.max(axis=1))
        return labels, probabilities

    def per_record(self, predictions: list[Any], probabilities: np.ndarray | None) -> list[dict]:
        if probabilities is None:
            return [{"prediction": value} for value in predictions]
        return [
            {"prediction": label, "probabilities": dict(zip(self.classes, row, strict=True))}
            for label, row in zip(predictions, probabilities.tolist(), strict=True)
        ]

    def predict_records(self, records: list[Any]) -> list[dict[str, Any]]:
        """One result per validated record (/predict and /predict_batch)."""
        # Taken apart once: the range check, the preprocessing and the metrics share the arrays.
        inputs = Inputs.from_rows(API.rows(records), API.numeric)
        results = self.per_record(*self.run_model(inputs))
        if PREDICTION_LOG:
            PREDICTION_LOG.record(API.columns, inputs.rows, results, self.lineage.model_version)
        return results

    @bentoml.api
    async def predict(self, record: Record, /) -> SinglePrediction:  # type: ignore[valid-type]
        """Predict one record: the body is a JSON object with one key per feature column."""
        with runtime.observe("predict", 1):
            [result] = self.predict_records([record])
        return SinglePrediction(**result, model_version=self.lineage.model_version)

    @bentoml.api
    async def predict_batch(self, batch: Batch, /) -> Predictions:  # type: ignore[valid-type]
        """Predict many records in one request: `{"records": [{...}, ...]}`."""
        with runtime.observe("predict_batch", len(batch.records)):
            results = self.predict_records(batch.records)
        return Predictions(predictions=results, model_version=self.lineage.model_version)

    @bentoml.api
    async def predict_columns(self, batch: ColumnBatch, /) -> ColumnPredictions:  # type: ignore[valid-type]
        """Predict many rows sent as columns, the cheapest batch to parse:
        `{"columns": {"<feature>": [...], ...}}`. The answer is columnar too: `predictions` in row
        order and, for a classifier, `probabilities` as one list per class."""
        columns = API.column_values(batch)
        with runtime.observe("predict_columns", len(columns[0])):
            inputs = Inputs.from_columns(columns, API.numeric)
            predictions, probabilities = self.run_model(inputs, COLUMN_FIELD)
        if PREDICTION_LOG:
            results = self.per_record(predictions, probabilities)
            PREDICTION_LOG.record(API.columns, inputs.rows, results, self.lineage.model_version)
        answer: dict[str, Any] = {"predictions": predictions}
        if probabilities is not None:
            answer["probabilities"] = dict(zip(self.classes, probabilities.T.tolist(), strict=True))
        return ColumnPredictions(**answer, model_version=self.lineage.model_version)

    @bentoml.api
    async def metadata(self) -> api.Lineage:
        """The MLflow run, registered model version and alias, git commit and data hash."""
        return self.lineage


Model.add_asgi_middleware(RequestGuard, max_bytes=runtime.MAX_BODY_BYTES)


async def model_card(request: Any) -> PlainTextResponse:
    """GET /model-card: the model card packaged with the model (Markdown), read-only."""
    return PlainTextResponse(api.load_card(MODEL))  # text/plain: a browser shows it as it is


# BentoML mounts it passively: only /model-card reaches it, every other path stays the service's.
Model.mount_asgi_app(
    Starlette(routes=[Route("/model-card", model_card, methods=["GET"])]), path="/"
)
