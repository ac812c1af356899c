"""The request guard in front of the service (see RequestGuard)."""

from __future__ import annotations

import json
from typing import Any


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
