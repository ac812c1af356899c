"""The request guard in front of the service (see RequestGuard), and the range check of numeric
inputs that keeps extreme finite floats from overflowing in the model (see check_range)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .inputs import Inputs


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


# Scaled inputs beyond this overflow downstream: tree models cast X to float32 (max ~3.4e38) and
# linear models square and sum it. A record reaching it is refused with its field, not a 500.
MAX_SCALED = 1e30
MAX_FLOAT = float(np.finfo(np.float64).max)


def input_limits(pipeline: Any, columns: list[str]) -> dict[int, float]:
    """The largest magnitude each numeric column may take, by position in the record: where the
    fitted StandardScaler maps it to MAX_SCALED (MAX_SCALED itself for a pipeline without one)."""
    limits: dict[int, float] = {}
    preprocess = getattr(pipeline, "named_steps", {}).get("preprocess")
    for _, steps, selected in getattr(preprocess, "transformers_", []):
        scaler = getattr(steps, "steps", [[None, None]])[-1][1]
        if type(scaler).__name__ != "StandardScaler":
            continue
        mean = scaler.mean_ if scaler.with_mean else np.zeros(len(selected))
        scale = scaler.scale_ if scaler.with_std else np.ones(len(selected))
        for column, m, s in zip(selected, mean, scale, strict=True):
            if column in columns:
                limits[columns.index(column)] = float(min(abs(m) + MAX_SCALED * s, MAX_FLOAT))
    return limits


RECORD_FIELD = "records[{row}].{column}"  # where a value is, in the body of a records request
COLUMN_FIELD = "columns.{column}[{row}]"  # and in a columnar one


def check_range(
    inputs: Inputs, columns: list[str], limits: dict[int, float], field: str = RECORD_FIELD
) -> str | None:
    """The first numeric value outside its column's limit, named as `field` says, or None."""
    index, values = inputs.numeric_index, inputs.numbers
    if not values.size:
        return None
    bound = np.array([limits.get(i, MAX_SCALED) for i in index])
    with np.errstate(invalid="ignore"):
        over = np.abs(values) > bound  # NaN (null) compares False: the imputer fills it
    if not over.any():
        return None
    r, j = (int(k) for k in np.argwhere(over)[0])
    return (
        f"{field.format(row=r, column=columns[index[j]])}: {float(values[r, j])!r} is out of the "
        f"range this model computes with (|value| <= {bound[j]:.3g})"
    )
