"""The FastAPI + uvicorn peers of `make bench`, with the same request models as the Bento service
(`uvicorn --factory deploy.bench.fastapi_app:<name>`):

- `plain`: the pipeline called the obvious way, on a DataFrame;
- `fastpath`: the service's own model call (`Model.predict_records` of service.py: range guard,
  NumPy fast path, metrics), so that its figures against the Bento's are the serving stack's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from {{ cookiecutter.__package }} import service
from {{ cookiecutter.__package }}.serving.api import lineage, load_model
from {{ cookiecutter.__package }}.serving.fastpath import to_frame
from {{ cookiecutter.__package }}.serving.inputs import Inputs

api = service.API
Predict = Callable[[list[Any]], list[dict[str, Any]]]


def serve(run_model: Predict, version: str) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(record: api.Record) -> dict[str, Any]:  # type: ignore[valid-type]
        [result] = run_model([record])
        return {**result, "model_version": version}

    @app.post("/predict_batch")
    async def predict_batch(batch: api.Batch) -> dict[str, Any]:  # type: ignore[valid-type]
        return {"predictions": run_model(batch.records), "model_version": version}

    return app


def plain() -> FastAPI:
    model = load_model(service.MODEL)
    labels = model.classes_.tolist() if api.is_classifier else []
    classes = [str(label) for label in labels]

    def run_model(records: list[Any]) -> list[dict[str, Any]]:
        frame = to_frame(Inputs.from_rows(api.rows(records), api.numeric), api.columns)
        if not api.is_classifier:
            return [{"prediction": float(value)} for value in model.predict(frame).tolist()]
        return [
            {
                "prediction": labels[row.index(max(row))],
                "probabilities": dict(zip(classes, row, strict=True)),
            }
            for row in model.predict_proba(frame).tolist()
        ]

    return serve(run_model, lineage(service.MODEL).model_version)


def fastpath() -> FastAPI:
    # The service class itself, outside BentoML: its __init__ loads the model and the fast path.
    model = service.Model.inner()
    return serve(model.predict_records, model.lineage.model_version)
