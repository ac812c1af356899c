"""The FastAPI + uvicorn baseline of `make bench`: the same model and request model as the Bento
service in a plain FastAPI app, calling the pipeline the obvious way (on a DataFrame).
"""

from __future__ import annotations

import importlib
import os
import pickle
from typing import Any

from fastapi import FastAPI

service = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.service")
to_frame = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.fastpath").to_frame
with open(service.MODEL.stored.path_of(service.MODEL_FILE), "rb") as file:
    model = pickle.load(file)  # noqa: S301 - our own model store
labels = model.classes_.tolist() if service.IS_CLASSIFIER else []
classes = [str(label) for label in labels]

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(record: service.Record) -> dict[str, Any]:  # type: ignore[valid-type]
    frame = to_frame(service.rows_of([record]), service.COLUMNS, service.NUMERIC)
    if not service.IS_CLASSIFIER:
        return {"prediction": float(model.predict(frame)[0])}
    [row] = model.predict_proba(frame).tolist()
    return {
        "prediction": labels[row.index(max(row))],
        "probabilities": dict(zip(classes, row, strict=True)),
    }
