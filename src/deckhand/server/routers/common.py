"""What every router shares: the error responses documented in OpenAPI."""

from __future__ import annotations

from typing import Any

from deckhand.server.schemas.common import ErrorResponse

API_PREFIX = "/api/v1"


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Bad request (e.g. checksum mismatch, invalid package)",
        401: "Missing or invalid token",
        403: "The token's role is not allowed to do this",
        404: "Not found",
        409: "Conflict (duplicate name, resource in use)",
        413: "Body too large",
        422: "Invalid input; `errors` names each field",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in (401, 422, *codes)}
