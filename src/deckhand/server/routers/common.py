"""What every router shares: the error responses documented in OpenAPI."""

from __future__ import annotations

from typing import Any

from deckhand.server.schemas.common import ErrorResponse

API_PREFIX = "/api/v1"


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: 401 and 422 (every API route) and the `codes` it can also answer.

    400 with a JSON body (one that does not parse), 403 where a role is refused, 404 where an
    id or name can be unknown, 409 for a conflict and wherever a deployment is looked up by
    name (a name shared across environments is ambiguous), 413 for uploads.
    """
    descriptions = {
        400: "Bad request: a body that is not JSON (or, for uploads, a checksum mismatch or an invalid package)",
        401: "Missing or invalid token",
        403: "The token's role is not allowed to do this",
        404: "Not found",
        409: "Conflict (duplicate name, resource in use, a name shared by several objects: use the id)",
        413: "Body too large",
        422: "Invalid input; `errors` names each field",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in (401, 422, *codes)}
