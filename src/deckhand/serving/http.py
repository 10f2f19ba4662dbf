"""Raw-ASGI helpers the prediction server's listeners share: errors, headers, responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

JSON = b"application/json"
Scope = dict[str, Any]
Headers = list[tuple[bytes, bytes]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def json_body(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


async def send_response(
    send: Any, status: int, body: bytes, content_type: bytes = JSON, headers: Headers | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def body_chunks(scope: Scope, receive: Any, limit: int, flag: str, what: str = "body") -> AsyncIterator[bytes]:
    """The request body as it arrives; more than `limit` bytes is a 413 naming `flag`."""
    declared = header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the {what} has {declared} bytes, over the limit of {limit} ({flag})")
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(499, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the {what} is over the limit of {limit} bytes ({flag})")
        yield chunk
        more = message.get("more_body", False)
