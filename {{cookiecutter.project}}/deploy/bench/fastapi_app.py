"""The FastAPI + uvicorn baseline of `make bench`: the same model and request model as the Bento
service in a plain FastAPI app, calling the pipeline the obvious way (on a DataFrame).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from {{ cookiecutter.__package }} import service
from {{ cookiecutter.__package }}.serving.api import load_model
from {{ cookiecutter.__package }}.serving.fastpath import to_frame

api = service.API
model = load_model(service.MODEL)
labels = model.classes_.tolist() if api.is_classifier else []
classes = [str(label) for label in labels]

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(record: api.Record) -> dict[str, Any]:  # type: ignore[valid-type]
    frame = to_frame(api.rows([record]), api.columns, api.numeric)
    if not api.is_classifier:
        return {"prediction": float(model.predict(frame)[0])}
    [row] = model.predict_proba(frame).tolist()
    return {
        "prediction": labels[row.index(max(row))],
        "probabilities": dict(zip(classes, row, strict=True)),
    }
